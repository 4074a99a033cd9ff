package main

import (
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
)

// intro is the top-level help's first paragraph; thinctl(8) starts with it
// too.
const intro = `thinctl manages a device-mapper thin pool and its snapshot devices
(with overlay2 or aufs as fallback drivers on kernels without dm-thin-pool).
`

// usage prints the top-level help: every command and the global flags.
func (a *app) usage(w io.Writer) {
	fmt.Fprint(w, intro+`
Usage:
  thinctl [global flags] <command> [flags] [args]

Commands:
`)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range visibleCommands() {
		fmt.Fprintf(tw, "  %s\t%s\n", c.name, c.summary)
	}
	tw.Flush()
	fmt.Fprint(w, "\nGlobal flags (accepted before or after the command name):\n")
	writeFlagHelp(w, globalFlagSet())
	fmt.Fprint(w, `
Exit status: 0 success, 1 failure, 2 usage error.
Run 'thinctl <command> --help' for a command's flags; docs/cli.md has an example of each.
`)
}

// help prints the help asked for with --help: a command's, a group's or
// the top-level one.
func (a *app) help(c *call) {
	w := a.stdout
	switch {
	case c.cmd != nil:
		commandHelp(w, c.cmd)
	case len(c.args) > 0:
		group := c.args[0]
		fmt.Fprintf(w, "Usage: thinctl %s <subcommand> [flags]\n\n%s.\n\nSubcommands:\n", group, groups[group])
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, sc := range subcommands(group) {
			fmt.Fprintf(tw, "  %s\t%s\n", sc.name, sc.summary)
		}
		tw.Flush()
	default:
		a.usage(w)
	}
}

// visibleCommands lists the commands --help, the docs, the manual and
// completion show: all but the hidden build helpers.
func visibleCommands() []*command {
	var out []*command
	for _, c := range commands {
		if !c.hidden {
			out = append(out, c)
		}
	}
	return out
}

// commandHelp prints "thinctl <command> --help".
func commandHelp(w io.Writer, cmd *command) {
	fmt.Fprintf(w, "Usage: thinctl %s\n\n%s\n", cmd.synopsis, cmd.detail)
	if fs := commandFlagSet(cmd); fs != nil {
		fmt.Fprint(w, "\nFlags:\n")
		writeFlagHelp(w, fs)
	}
	var extra []string
	if cmd.json {
		extra = append(extra, "-o json prints one JSON document.")
	}
	if cmd.dmOnly {
		extra = append(extra, "Only available with the devicemapper driver.")
	}
	if len(extra) > 0 {
		fmt.Fprintf(w, "\n%s\n", strings.Join(extra, " "))
	}
	fmt.Fprint(w, "\nGlobal flags: --root DIR, --driver NAME, -o/--output FORMAT, --debug (see 'thinctl --help').\n")
}

// globalFlagSet returns the global flags, for help.
func globalFlagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("thinctl", flag.ContinueOnError)
	globalFlags(fs, &globals{})
	return fs
}

// commandFlagSet returns a command's own flags, nil when it has none.
func commandFlagSet(cmd *command) *flag.FlagSet {
	if cmd.flags == nil {
		return nil
	}
	fs := flag.NewFlagSet(cmd.name, flag.ContinueOnError)
	cmd.flags(fs, &options{})
	return fs
}

// flagNames lists a flag set's long flags ("--root"), help excluded,
// sorted.
func flagNames(fs *flag.FlagSet) []string {
	var out []string
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name != "help" {
			out = append(out, "--"+f.Name)
		}
	})
	sort.Strings(out)
	return out
}

// writeFlagHelp prints one aligned line per flag, sorted by name:
// "  --name VALUE  usage".
func writeFlagHelp(w io.Writer, fs *flag.FlagSet) {
	short := map[string]string{}
	for s, long := range shortAliases {
		short[long] = s
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == "help" {
			return
		}
		placeholder, usage := flag.UnquoteUsage(f)
		flagText := "--" + f.Name
		if s, ok := short[f.Name]; ok {
			flagText = "-" + s + ", " + flagText
		}
		if placeholder != "" {
			flagText += " " + placeholder
		}
		fmt.Fprintf(tw, "  %s\t%s\n", flagText, usage)
	})
	tw.Flush()
}

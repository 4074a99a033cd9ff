package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/thinctl/thinctl/driver"
	"github.com/thinctl/thinctl/thinpool"
)

// defaultRoot is the state directory when neither --root nor THINCTL_ROOT
// names one.
const defaultRoot = "/var/lib/thinctl"

// drivers are the accepted --driver values.
var drivers = []string{"auto", "devicemapper", "overlay2", "aufs"}

// globals are the flags accepted before or after the command name.
type globals struct {
	root   string
	driver string
	output string
	debug  bool
	help   bool
}

// app is one thinctl invocation's environment. Tests replace the
// functions that touch the host (privileges, terminals, kernel facts).
type app struct {
	stdin          io.Reader // import's archive
	stdout, stderr io.Writer
	getenv         func(string) string
	geteuid        func() int
	isTerminal     func(io.Writer) bool
	uname          func() string
	dmVersion      func() string
	// choose resolves --driver to a backend and the reason for it,
	// changing nothing (driver.Choose).
	choose func(root, name string) (driver.Choice, error)
	// context is cancelled when the user interrupts thinctl (SIGINT,
	// SIGTERM); every blocking library call gets it.
	context context.Context
}

// call is one parsed command line.
type call struct {
	app  *app
	cmd  *command
	g    globals
	opts options
	args []string        // positional arguments
	set  map[string]bool // flags the user gave, by long name
	ch   driver.Choice   // resolved driver, filled before the driver is opened
	bar  *progressBar    // drawn on a terminal during long work
}

// run executes one thinctl command line and returns the exit status; ctx
// cancelled stops the work at the next point where nothing is left half
// done.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := newApp(stdout, stderr)
	a.context = ctx
	return a.run(args)
}

// newApp returns an app wired to the real host.
func newApp(stdout, stderr io.Writer) *app {
	return &app{
		stdin:      os.Stdin,
		stdout:     stdout,
		stderr:     stderr,
		getenv:     os.Getenv,
		geteuid:    os.Geteuid,
		isTerminal: isTerminal,
		uname:      kernelRelease,
		dmVersion:  dmVersion,
		choose:     driver.Choose,
		context:    context.Background(),
	}
}

// run parses args, runs the command and reports any error.
func (a *app) run(args []string) int {
	c, err := a.parse(args)
	if err != nil {
		return a.fail(c, err)
	}
	if c.g.help {
		a.help(c)
		return 0
	}
	if c.cmd == nil {
		a.usage(a.stderr)
		return exitUsage
	}
	if !c.cmd.noRoot && a.geteuid() != 0 {
		return a.fail(c, errNotRoot)
	}
	err = c.cmd.run(c)
	c.endProgress()
	if err != nil {
		return a.fail(c, err)
	}
	return exitOK
}

// globalFlags registers the global flags on fs.
func globalFlags(fs *flag.FlagSet, g *globals) {
	fs.StringVar(&g.root, "root", g.root, "state directory `DIR` (default /var/lib/thinctl; env THINCTL_ROOT)")
	fs.Var(choiceValue{&g.driver, drivers}, "driver", "storage driver `NAME`: auto, devicemapper, overlay2 or aufs (default auto)")
	fs.Var(choiceValue{&g.output, []string{"text", "json"}}, "output", "output `FORMAT`: text or json (default text)")
	// Defaults are the current values: registering the flags again for the
	// command must not undo what was given before the command name.
	fs.BoolVar(&g.debug, "debug", g.debug, "log each kernel operation to stderr")
	fs.BoolVar(&g.help, "help", g.help, "show help")
}

// parse splits args into global flags, the command words, the command's
// flags and its positional arguments. Flags may come anywhere; global
// flags are also accepted before the command name.
func (a *app) parse(args []string) (*call, error) {
	c := &call{app: a, g: globals{root: defaultRoot, driver: "auto", output: "text"}}
	if env := a.getenv("THINCTL_ROOT"); env != "" {
		c.g.root = env
	}
	gfs := flag.NewFlagSet("thinctl", flag.ContinueOnError)
	globalFlags(gfs, &c.g)
	gp := newFlagParser(gfs)

	var words []string
	i := 0
	for i < len(args) && c.cmd == nil {
		a := args[i]
		if a == "--" {
			break
		}
		if isFlagArg(a) {
			n, err := gp.parseOne(args, i)
			if err != nil {
				return c, usagef("%v", err)
			}
			i += n
			continue
		}
		words = append(words, a)
		i++
		if cmd := lookupCommand(words); cmd != nil {
			c.cmd = cmd
			break
		}
		if _, ok := groups[words[0]]; !ok || len(words) > 1 {
			return c, &usageError{what: "", why: fmt.Sprintf("unknown command %q", strings.Join(words, " ")),
				hint: "run 'thinctl --help' for the list of commands"}
		}
	}
	c.set = gp.set
	if c.cmd == nil {
		if len(words) > 0 && !c.g.help {
			return c, &usageError{why: fmt.Sprintf("%q needs a subcommand", words[0]),
				hint: fmt.Sprintf("run 'thinctl %s --help' for its subcommands", words[0])}
		}
		if c.g.help && len(words) > 0 {
			c.args = words // a group's help
		}
		return c, nil
	}

	fs := flag.NewFlagSet(c.cmd.name, flag.ContinueOnError)
	globalFlags(fs, &c.g)
	if c.cmd.flags != nil {
		c.cmd.flags(fs, &c.opts)
	}
	p := newFlagParser(fs)
	pos, err := p.parse(args[i:])
	for k := range p.set {
		c.set[k] = true
	}
	if err != nil {
		return c, usagef("%v", err)
	}
	if c.g.help {
		return c, nil
	}
	if len(pos) != len(c.cmd.args) {
		if len(pos) < len(c.cmd.args) {
			return c, usagef("missing %s", strings.Join(c.cmd.args[len(pos):], " "))
		}
		return c, usagef("unexpected argument %q", pos[len(c.cmd.args)])
	}
	c.args = pos
	if c.g.output == "json" && !c.cmd.json {
		return c, usagef("-o json is not available for %s (it is for %s)", c.cmd.name, jsonCommands())
	}
	if c.g.root == "" {
		return c, usagef("--root must not be empty")
	}
	if c.g.root, err = filepath.Abs(c.g.root); err != nil {
		return c, usagef("--root %q: %v", c.g.root, err)
	}
	// Ids are checked before anything else happens.
	for _, id := range c.args {
		if err := thinpool.ValidateID(id); err != nil {
			return c, &usageError{why: fmt.Sprintf("invalid ID %q: %s", id, idReason(err)), hint: idRules}
		}
	}
	if c.opts.parent != "" {
		if err := thinpool.ValidateID(c.opts.parent); err != nil {
			return c, &usageError{why: fmt.Sprintf("invalid --parent %q: %s", c.opts.parent, idReason(err)), hint: idRules}
		}
	}
	if c.cmd.validate != nil {
		if err := c.cmd.validate(c); err != nil {
			return c, err
		}
	}
	return c, nil
}

// jsonCommands lists the commands that take -o json, in help order:
// "list, info, ... and docker adopt".
func jsonCommands() string {
	var names []string
	for _, c := range commands {
		if c.json && !c.hidden {
			names = append(names, c.name)
		}
	}
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

// idRules is the hint for a refused id.
const idRules = "IDs are 1 to 128 characters of A-Z a-z 0-9 _ . - and do not start with '.' or '-'"

// idReason returns why ValidateID refused an id, without the sentinel's
// generic text.
func idReason(err error) string {
	return strings.TrimSuffix(err.Error(), ": "+thinpool.ErrInvalidID.Error())
}

// id returns the call's single positional argument.
func (c *call) id() string { return c.args[0] }

// what names the work for error messages: "create web", "pool status".
func (c *call) what() string {
	if c.cmd == nil {
		return ""
	}
	if len(c.args) > 0 {
		return c.cmd.name + " " + strings.Join(c.args, " ")
	}
	return c.cmd.name
}

// ctx is the context every library call of the command gets.
func (c *call) ctx() context.Context { return c.app.context }

// json reports whether the user asked for JSON output.
func (c *call) json() bool { return c.g.output == "json" }

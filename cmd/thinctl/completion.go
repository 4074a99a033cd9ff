package main

import (
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Shell completion is generated from the command table and the flag sets
// that --help prints, so a new command or flag completes as soon as it is
// listed there. The three scripts share one model: which words are
// commands, which flags each command takes and what each flag's value is.

// shells are the accepted "completion" arguments.
var shells = []string{"bash", "zsh", "fish"}

// Value kinds of flags and positional arguments.
const (
	kindNone    = "none"    // a switch: no value
	kindSize    = "size"    // a size: digits complete to digits+unit
	kindPercent = "percent" // a percentage
	kindDir     = "dir"     // a directory
	kindFile    = "file"    // a file or device node
	kindID      = "id"      // an existing device ID (thinctl list)
	kindNewID   = "newid"   // a new device ID: nothing to offer
	kindText    = "text"    // free text: nothing to offer
	kindChoice  = "choice"  // one of a fixed set of words
)

// newIDCommands are the commands whose ID argument names a device that
// does not exist yet.
var newIDCommands = map[string]bool{"create": true, "import": true}

// sizeUnits are the units offered after the digits of a size.
var sizeUnits = []string{"K", "M", "G", "T"}

// compValue describes what a flag or argument takes.
type compValue struct {
	kind    string
	choices []string // kindChoice
}

// compFlag is one flag as completion sees it.
type compFlag struct {
	name  string // "data-size"
	short string // "o" for output, or ""
	usage string
	value compValue
}

// compCommand is one command as completion sees it.
type compCommand struct {
	name    string // "pool init"
	summary string
	flags   []compFlag
	args    []compValue // positional arguments, in order
}

// flagValue classifies a flag by the type of its value and the
// placeholder its usage names.
func flagValue(f *flag.Flag) compValue {
	if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() {
		return compValue{kind: kindNone}
	}
	switch v := f.Value.(type) {
	case sizeValue:
		return compValue{kind: kindSize}
	case percentValue:
		return compValue{kind: kindPercent}
	case choiceValue:
		return compValue{kind: kindChoice, choices: v.choices}
	}
	placeholder, _ := flag.UnquoteUsage(f)
	switch placeholder {
	case "DIR":
		return compValue{kind: kindDir}
	case "DEV", "FILE":
		return compValue{kind: kindFile}
	case "ID":
		return compValue{kind: kindID}
	}
	return compValue{kind: kindText}
}

// compFlags lists a flag set's flags (help excluded), sorted by name.
func compFlags(fs *flag.FlagSet) []compFlag {
	short := map[string]string{}
	for s, long := range shortAliases {
		short[long] = s
	}
	var out []compFlag
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == "help" {
			return
		}
		_, usage := flag.UnquoteUsage(f)
		out = append(out, compFlag{name: f.Name, short: short[f.Name], usage: usage, value: flagValue(f)})
	})
	return out
}

// completionModel returns the global flags (with --help) and every visible
// command.
func completionModel() (globals []compFlag, cmds []compCommand) {
	globals = append(compFlags(globalFlagSet()), compFlag{name: "help", short: "h", usage: "show help", value: compValue{kind: kindNone}})
	for _, c := range visibleCommands() {
		cc := compCommand{name: c.name, summary: c.summary}
		if fs := commandFlagSet(c); fs != nil {
			cc.flags = compFlags(fs)
		}
		for _, a := range c.args {
			switch {
			case a == "SHELL":
				cc.args = append(cc.args, compValue{kind: kindChoice, choices: shells})
			case a == "ID" && newIDCommands[c.name]:
				cc.args = append(cc.args, compValue{kind: kindNewID})
			case a == "ID":
				cc.args = append(cc.args, compValue{kind: kindID})
			default:
				cc.args = append(cc.args, compValue{kind: kindText})
			}
		}
		cmds = append(cmds, cc)
	}
	return globals, cmds
}

// flagValues maps every flag spelling ("--data-size", "-o") to its value,
// across the global flags and every command; it fails when one name means
// two kinds of value, which the scripts could not tell apart.
func flagValues(globals []compFlag, cmds []compCommand) (map[string]compValue, error) {
	out := map[string]compValue{}
	add := func(f compFlag) error {
		for _, n := range []string{"--" + f.name, "-" + f.short} {
			if n == "-" {
				continue
			}
			if old, ok := out[n]; ok && (old.kind != f.value.kind || strings.Join(old.choices, " ") != strings.Join(f.value.choices, " ")) {
				return fmt.Errorf("flag %s takes a %s in one command and a %s in another", n, old.kind, f.value.kind)
			}
			out[n] = f.value
		}
		return nil
	}
	for _, f := range globals {
		if err := add(f); err != nil {
			return nil, err
		}
	}
	for _, c := range cmds {
		for _, f := range c.flags {
			if err := add(f); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// init completes the "completion" entry of the command table; the table
// cannot name runCompletion itself, which reads the table (an
// initialization cycle).
func init() { lookupCommand([]string{"completion"}).run = runCompletion }

func validateCompletion(c *call) error {
	for _, s := range shells {
		if c.args[0] == s {
			return nil
		}
	}
	return usagef("unknown shell %q: use bash, zsh or fish", c.args[0])
}

func runCompletion(c *call) error {
	switch c.args[0] {
	case "bash":
		return writeBashCompletion(c.stdout())
	case "zsh":
		return writeZshCompletion(c.stdout())
	default:
		return writeFishCompletion(c.stdout())
	}
}

// valueWord renders a value for the scripts: "size", "choice:a b c".
func valueWord(v compValue) string {
	if v.kind == kindChoice {
		return kindChoice + ":" + strings.Join(v.choices, " ")
	}
	return v.kind
}

// shellQuote quotes s for sh with single quotes.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// firstWords lists the commands' first words (groups once), in help order.
func firstWords(cmds []compCommand) []string {
	var out []string
	seen := map[string]bool{}
	for _, c := range cmds {
		w := strings.Fields(c.name)[0]
		if !seen[w] {
			seen[w] = true
			out = append(out, w)
		}
	}
	return out
}

// flagSpellings lists "--name" (and "-s") of flags.
func flagSpellings(fs []compFlag) []string {
	var out []string
	for _, f := range fs {
		out = append(out, "--"+f.name)
		if f.short != "" {
			out = append(out, "-"+f.short)
		}
	}
	return out
}

// bashFunctions writes the bash completion function __thinctl_complete
// (zsh runs it through bashcompinit).
func bashFunctions(w io.Writer) error {
	globals, cmds := completionModel()
	values, err := flagValues(globals, cmds)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "__thinctl_global_flags=%s\n", shellQuote(strings.Join(flagSpellings(globals), " ")))
	fmt.Fprintf(w, "__thinctl_first_words=%s\n", shellQuote(strings.Join(firstWords(cmds), " ")))
	fmt.Fprint(w, `
# __thinctl_sub GROUP: the subcommands of a command group.
__thinctl_sub() {
	case "$1" in
`)
	groupNames := make([]string, 0, len(groups))
	for g := range groups {
		groupNames = append(groupNames, g)
	}
	sort.Strings(groupNames)
	for _, g := range groupNames {
		var subs []string
		for _, sc := range subcommands(g) {
			subs = append(subs, strings.TrimPrefix(sc.name, g+" "))
		}
		fmt.Fprintf(w, "\t%s) echo %s ;;\n", shellQuote(g), shellQuote(strings.Join(subs, " ")))
	}
	fmt.Fprint(w, `	esac
}

# __thinctl_flags COMMAND: the flags COMMAND takes besides the global ones.
__thinctl_flags() {
	case "$1" in
`)
	for _, c := range cmds {
		if len(c.flags) > 0 {
			fmt.Fprintf(w, "\t%s) echo %s ;;\n", shellQuote(c.name), shellQuote(strings.Join(flagSpellings(c.flags), " ")))
		}
	}
	fmt.Fprint(w, `	esac
}

# __thinctl_args COMMAND: what COMMAND's positional arguments are, in order.
__thinctl_args() {
	case "$1" in
`)
	for _, c := range cmds {
		if len(c.args) > 0 {
			var ws []string
			for _, a := range c.args {
				ws = append(ws, shellQuote(valueWord(a)))
			}
			fmt.Fprintf(w, "\t%s) printf '%%s\\n' %s ;;\n", shellQuote(c.name), strings.Join(ws, " "))
		}
	}
	fmt.Fprint(w, `	esac
}

# __thinctl_value FLAG: what FLAG's value is (none for a switch).
__thinctl_value() {
	case "$1" in
`)
	names := make([]string, 0, len(values))
	for n := range values {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "\t%s) echo %s ;;\n", n, shellQuote(valueWord(values[n])))
	}
	fmt.Fprintf(w, "\t*) echo %s ;;\n", kindText)
	fmt.Fprintf(w, `	esac
}

# __thinctl_offer KIND CUR PROG ROOTARGS...: fill COMPREPLY with the values
# of KIND that start with CUR; PROG and ROOTARGS run "thinctl list".
__thinctl_offer() {
	local kind="$1" cur="$2" prog="$3" u
	shift 3
	case "$kind" in
	choice:*) COMPREPLY=($(compgen -W "${kind#choice:}" -- "$cur")) ;;
	%[1]s)
		if [[ "$cur" =~ ^[0-9]+$ ]]; then
			COMPREPLY=()
			for u in %[2]s; do COMPREPLY+=("$cur$u"); done
		fi ;;
	%[3]s) [[ "$cur" =~ ^[0-9]+$ ]] && COMPREPLY=("$cur%%") ;;
	%[4]s) compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -d -- "$cur")) ;;
	%[5]s) compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -f -- "$cur")) ;;
	%[6]s)
		COMPREPLY=($(compgen -W "$("$prog" "$@" -o json list 2>/dev/null |
			sed -n 's/^ *"id": *"\([^"]*\)".*/\1/p')" -- "$cur")) ;;
	esac
}

# __thinctl_complete: the completion function for thinctl.
__thinctl_complete() {
	local cword=$COMP_CWORD cur="${COMP_WORDS[COMP_CWORD]}" prog="${COMP_WORDS[0]}"
	local words=() i w kind cmd="" group="" nargs=0 pending="" prefix=""
	COMPREPLY=()
	# Glue "--flag" "=" "value", which COMP_WORDBREAKS splits, back together.
	for ((i = 1; i < cword; i++)); do
		w="${COMP_WORDS[i]}"
		if [ "$w" = "=" ] && [ ${#words[@]} -gt 0 ]; then
			words[${#words[@]}-1]+="="
			if ((i + 1 < cword)); then
				((i++))
				words[${#words[@]}-1]+="${COMP_WORDS[i]}"
			fi
			continue
		fi
		words+=("$w")
	done
	if [ "$cur" = "=" ]; then
		cur="" pending="${words[${#words[@]}-1]%%=}"
		words=("${words[@]:0:${#words[@]}-1}")
	elif ((cword >= 2)) && [ "${COMP_WORDS[cword-1]}" = "=" ]; then
		pending="${words[${#words[@]}-1]%%=}"
		words=("${words[@]:0:${#words[@]}-1}")
	elif [[ "$cur" == --*=* ]]; then
		pending="${cur%%%%=*}" prefix="${cur%%%%=*}=" cur="${cur#*=}"
	fi
	# Walk the words before the cursor: flags (and their values), the
	# command's words, its arguments. --root and --driver go to "list".
	local rootargs=() skip=""
	for w in "${words[@]}"; do
		if [ -n "$skip" ]; then
			case "$skip" in --root | --driver) rootargs+=("$skip" "$w") ;; esac
			skip=""
			continue
		fi
		case "$w" in
		--root=* | --driver=*) rootargs+=("$w"); continue ;;
		-?*=*) continue ;;
		-?*)
			[ "$(__thinctl_value "$w")" = %[7]s ] || skip="$w"
			continue ;;
		esac
		if [ -z "$cmd" ] && [ -n "$group" ]; then
			cmd="$group $w" group=""
		elif [ -z "$cmd" ] && [ -n "$(__thinctl_sub "$w")" ]; then
			group="$w"
		elif [ -z "$cmd" ]; then
			cmd="$w"
		else
			((nargs++))
		fi
	done
	[ -n "$pending" ] || pending="$skip"
	if [ -n "$pending" ]; then
		__thinctl_offer "$(__thinctl_value "$pending")" "$cur" "$prog" "${rootargs[@]}"
		if [ -n "$prefix" ]; then
			COMPREPLY=("${COMPREPLY[@]/#/$prefix}")
		fi
		return 0
	fi
	if [[ "$cur" == -* ]]; then
		COMPREPLY=($(compgen -W "$__thinctl_global_flags $(__thinctl_flags "$cmd")" -- "$cur"))
		return 0
	fi
	if [ -n "$group" ]; then
		COMPREPLY=($(compgen -W "$(__thinctl_sub "$group")" -- "$cur"))
	elif [ -z "$cmd" ]; then
		COMPREPLY=($(compgen -W "$__thinctl_first_words" -- "$cur"))
	else
		kind="$(__thinctl_args "$cmd" | sed -n "$((nargs + 1))p")"
		[ -z "$kind" ] || __thinctl_offer "$kind" "$cur" "$prog" "${rootargs[@]}"
	fi
	return 0
}
`, kindSize, strings.Join(sizeUnits, " "), kindPercent, kindDir, kindFile, kindID, kindNone)
	return nil
}

// writeBashCompletion writes the bash script: the function and its
// registration.
func writeBashCompletion(w io.Writer) error {
	fmt.Fprint(w, "# bash completion for thinctl(8). Generated by 'thinctl completion bash' from\n"+
		"# the command table --help prints: regenerate, do not edit.\n\n")
	if err := bashFunctions(w); err != nil {
		return err
	}
	fmt.Fprint(w, "\ncomplete -F __thinctl_complete thinctl\n")
	return nil
}

// writeZshCompletion writes the zsh script: the bash function run through
// zsh's bashcompinit, so both shells complete the same words.
func writeZshCompletion(w io.Writer) error {
	fmt.Fprint(w, "#compdef thinctl\n"+
		"# zsh completion for thinctl(8). Generated by 'thinctl completion zsh' from the\n"+
		"# command table --help prints: the bash completion function, run through zsh's\n"+
		"# bashcompinit. Regenerate, do not edit.\n\n"+
		"autoload -U +X bashcompinit && bashcompinit\n\n")
	if err := bashFunctions(w); err != nil {
		return err
	}
	fmt.Fprint(w, "\ncomplete -F __thinctl_complete thinctl\n"+
		"# Loaded from $fpath on the first Tab: complete that one too.\n"+
		"if [[ -n ${compstate-} ]]; then _bash_complete -F __thinctl_complete; fi\n")
	return nil
}

// writeFishCompletion writes the fish script: one "complete" line per
// command, subcommand and flag.
func writeFishCompletion(w io.Writer) error {
	globals, cmds := completionModel()
	values, err := flagValues(globals, cmds)
	if err != nil {
		return err
	}
	var valued []string
	for n, v := range values {
		if v.kind != kindNone {
			valued = append(valued, n)
		}
	}
	sort.Strings(valued)
	fmt.Fprintf(w, `# fish completion for thinctl(8). Generated by 'thinctl completion fish' from
# the command table --help prints: regenerate, do not edit.

# __thinctl_words: the words on the command line that are neither flags nor
# flag values (the command, then its arguments).
function __thinctl_words
    set -l skip 0
    for w in (commandline -opc)[2..-1]
        if test $skip = 1
            set skip 0
            continue
        end
        switch $w
            case '-*=*'
                continue
            case '-*'
                contains -- $w %s; and set skip 1
                continue
        end
        echo $w
    end
end

# __thinctl_on COMMAND...: whether the command line's words start with COMMAND.
function __thinctl_on
    set -l words (__thinctl_words)
    set -l n (count $argv)
    test (count $words) -ge $n; or return 1
    test "$words[1..$n]" = "$argv"
end

# __thinctl_nwords N: whether the command line has exactly N words.
function __thinctl_nwords
    test (count (__thinctl_words)) -eq $argv[1]
end

# __thinctl_ids: the device IDs "thinctl list" prints for the --root and
# --driver on the command line.
function __thinctl_ids
    set -l line (commandline -opc)
    set -l args
    for i in (seq 2 (count $line))
        switch $line[$i]
            case '--root=*' '--driver=*'
                set -a args $line[$i]
            case --root --driver
                set -a args $line[$i] $line[(math $i + 1)]
        end
    end
    command $line[1] $args -o json list 2>/dev/null | string replace -rf '^\s*"id":\s*"([^"]*)".*' '$1'
end

# __thinctl_units UNIT...: the number being typed with each unit.
function __thinctl_units
    set -l cur (commandline -ct | string replace -r '^--[^=]*=' '')
    string match -qr '^[0-9]+$' -- $cur; or return
    for u in $argv
        echo $cur$u
    end
end

complete -c thinctl -f
`, strings.Join(valued, " "))
	fishFlag := func(cond string, f compFlag) {
		line := "complete -c thinctl"
		if cond != "" {
			line += " -n " + shellQuote(cond)
		}
		line += " -l " + f.name
		if f.short != "" {
			line += " -s " + f.short
		}
		switch f.value.kind {
		case kindNone:
		case kindChoice:
			line += " -x -a " + shellQuote(strings.Join(f.value.choices, " "))
		case kindSize:
			line += " -x -a " + shellQuote("(__thinctl_units "+strings.Join(sizeUnits, " ")+")")
		case kindPercent:
			line += " -x -a '(__thinctl_units %)'"
		case kindDir:
			line += " -x -a '(__fish_complete_directories)'"
		case kindFile:
			line += " -r -F"
		case kindID:
			line += " -x -a '(__thinctl_ids)'"
		default:
			line += " -x"
		}
		fmt.Fprintln(w, line+" -d "+shellQuote(f.usage))
	}
	for _, f := range globals {
		fishFlag("", f)
	}
	for _, g := range firstWords(cmds) {
		desc := groups[g]
		for _, c := range cmds {
			if c.name == g {
				desc = c.summary
			}
		}
		fmt.Fprintf(w, "complete -c thinctl -n '__thinctl_nwords 0' -a %s -d %s\n", g, shellQuote(desc))
	}
	for _, c := range cmds {
		words := strings.Fields(c.name)
		if len(words) == 2 {
			fmt.Fprintf(w, "complete -c thinctl -n %s -a %s -d %s\n",
				shellQuote("__thinctl_on "+words[0]+"; and __thinctl_nwords 1"), words[1], shellQuote(c.summary))
		}
		on := "__thinctl_on " + c.name
		for _, f := range c.flags {
			fishFlag(on, f)
		}
		for i, a := range c.args {
			cond := shellQuote(fmt.Sprintf("%s; and __thinctl_nwords %d", on, len(words)+i))
			switch a.kind {
			case kindChoice:
				fmt.Fprintf(w, "complete -c thinctl -n %s -a %s\n", cond, shellQuote(strings.Join(a.choices, " ")))
			case kindID:
				fmt.Fprintf(w, "complete -c thinctl -n %s -a '(__thinctl_ids)'\n", cond)
			}
		}
	}
	return nil
}

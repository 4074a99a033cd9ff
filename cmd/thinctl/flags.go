package main

import (
	"flag"
	"fmt"
	"strings"
)

// sizeValue is a flag holding a size in bytes (see parseSize).
type sizeValue struct{ n *uint64 }

func (v sizeValue) String() string {
	if v.n == nil || *v.n == 0 {
		return ""
	}
	return humanSize(*v.n)
}

func (v sizeValue) Set(s string) error {
	n, err := parseSize(s)
	if err != nil {
		return err
	}
	*v.n = n
	return nil
}

// percentValue is a flag holding a percentage (see parsePercent).
type percentValue struct {
	p   *float64
	set *bool // true once the flag is given (0 is a value: no minimum)
}

func (v percentValue) String() string { return "" }

func (v percentValue) Set(s string) error {
	p, err := parsePercent(s)
	if err != nil {
		return err
	}
	*v.p, *v.set = p, true
	return nil
}

// listValue is a repeatable string flag; each use appends one value.
type listValue struct{ l *[]string }

func (v listValue) String() string { return "" }

func (v listValue) Set(s string) error {
	if s == "" {
		return fmt.Errorf("empty value")
	}
	*v.l = append(*v.l, s)
	return nil
}

// choiceValue is a string flag restricted to a fixed set of words.
type choiceValue struct {
	s       *string
	choices []string
}

func (v choiceValue) String() string {
	if v.s == nil {
		return ""
	}
	return *v.s
}

func (v choiceValue) Set(s string) error {
	for _, c := range v.choices {
		if s == c {
			*v.s = s
			return nil
		}
	}
	return fmt.Errorf("must be one of %s", strings.Join(v.choices, ", "))
}

// shortAliases maps one-letter flags to the long flag they stand for.
var shortAliases = map[string]string{"o": "output", "h": "help"}

// flagParser parses arguments against a flag.FlagSet, allowing flags and
// positional arguments in any order ("create web --parent base" and
// "create --parent base web" are the same) and recording which flags the
// user set.
type flagParser struct {
	fs  *flag.FlagSet
	set map[string]bool
}

func newFlagParser(fs *flag.FlagSet) *flagParser {
	return &flagParser{fs: fs, set: map[string]bool{}}
}

// isFlagArg reports whether a looks like a flag ("-x", "--x", "--x=v").
func isFlagArg(a string) bool { return len(a) > 1 && a[0] == '-' && a != "--" }

// splitFlag turns "--name=value" into ("name", "value", true).
func splitFlag(a string) (name, value string, hasValue bool) {
	name = strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
	if i := strings.IndexByte(name, '='); i >= 0 {
		return name[:i], name[i+1:], true
	}
	return name, "", false
}

// canonical returns the long name of a flag, resolving short aliases.
func canonical(name string) string {
	if long, ok := shortAliases[name]; ok {
		return long
	}
	return name
}

// displayName renders a flag as the user types it: -o for one letter,
// --name otherwise.
func displayName(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// parseOne consumes the flag at args[i] (and its value when it takes
// one) and returns how many arguments it used.
func (p *flagParser) parseOne(args []string, i int) (int, error) {
	name, value, hasValue := splitFlag(args[i])
	long := canonical(name)
	f := p.fs.Lookup(long)
	if f == nil || name == "" || strings.HasPrefix(name, "-") {
		return 0, fmt.Errorf("unknown flag %s", args[i])
	}
	used := 1
	if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() {
		if !hasValue {
			value = "true"
		}
	} else if !hasValue {
		if i+1 >= len(args) {
			return 0, fmt.Errorf("flag %s needs a value", displayName(long))
		}
		value = args[i+1]
		used = 2
	}
	if err := f.Value.Set(value); err != nil {
		return 0, fmt.Errorf("invalid %s %q: %v", displayName(long), value, err)
	}
	p.set[long] = true
	return used, nil
}

// parse consumes every argument, returning the positional ones in order.
// "--" ends flag parsing.
func (p *flagParser) parse(args []string) ([]string, error) {
	var pos []string
	for i := 0; i < len(args); {
		a := args[i]
		if a == "--" {
			return append(pos, args[i+1:]...), nil
		}
		if !isFlagArg(a) {
			pos = append(pos, a)
			i++
			continue
		}
		n, err := p.parseOne(args, i)
		if err != nil {
			return nil, err
		}
		i += n
	}
	return pos, nil
}

package main

import (
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// docSection is one command's section of docs/cli.md.
type docSection struct {
	synopsis string   // the first code block, whitespace-normalized
	flags    []string // "--name" of every "- `--name ...`" item, sorted
	example  string   // the console block
}

var (
	docFlagItem  = regexp.MustCompile("^- `(?:-[a-z], )?(--[a-z][a-z-]*)")
	helpFlagLine = regexp.MustCompile(`^  (?:-[a-z], )?(--[a-z][a-z-]*)`)
)

// parseCLIDoc reads docs/cli.md: the global flag items and one section per
// "### thinctl <command>" heading.
func parseCLIDoc(t *testing.T) (globalFlags []string, sections map[string]*docSection) {
	t.Helper()
	b, err := os.ReadFile("../../docs/cli.md")
	if os.IsNotExist(err) && os.Getenv("THINCTL_VM") == "1" {
		t.Skip("docs/cli.md is not copied into the VM; the host run checks it")
	}
	if err != nil {
		t.Fatal(err)
	}
	sections = map[string]*docSection{}
	var cur *docSection
	inGlobal, inBlock, blockKind := false, false, ""
	var block []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "```") {
			if !inBlock {
				inBlock, blockKind, block = true, strings.TrimPrefix(line, "```"), nil
				continue
			}
			inBlock = false
			if cur != nil {
				switch {
				case cur.synopsis == "":
					cur.synopsis = strings.Join(strings.Fields(strings.Join(block, " ")), " ")
				case blockKind == "console":
					cur.example += strings.Join(block, "\n") + "\n"
				}
			}
			continue
		}
		if inBlock {
			block = append(block, line)
			continue
		}
		switch {
		case strings.HasPrefix(line, "## "):
			inGlobal = strings.TrimSpace(line) == "## Global flags"
			cur = nil
		case strings.HasPrefix(line, "### thinctl "):
			inGlobal = false
			cur = &docSection{}
			sections[strings.TrimPrefix(line, "### thinctl ")] = cur
		case strings.HasPrefix(line, "### "):
			cur = nil
		}
		if m := docFlagItem.FindStringSubmatch(line); m != nil {
			if inGlobal {
				globalFlags = append(globalFlags, m[1])
			} else if cur != nil {
				cur.flags = append(cur.flags, m[1])
			}
		}
	}
	sort.Strings(globalFlags)
	for _, s := range sections {
		sort.Strings(s.flags)
	}
	return globalFlags, sections
}

// helpFlags returns the "--name" of every flag line under heading in a
// help text, sorted.
func helpFlags(help, heading string) []string {
	var out []string
	in := false
	for _, line := range strings.Split(help, "\n") {
		if strings.HasPrefix(line, heading) {
			in = true
			continue
		}
		if in && line == "" {
			break
		}
		if m := helpFlagLine.FindStringSubmatch(line); in && m != nil {
			out = append(out, m[1])
		}
	}
	sort.Strings(out)
	return out
}

// helpCommands returns the command names listed by "thinctl --help".
func helpCommands(help string) []string {
	var out []string
	in := false
	for _, line := range strings.Split(help, "\n") {
		if line == "Commands:" {
			in = true
			continue
		}
		if in && line == "" {
			break
		}
		if in {
			// "  pool init   create ..." — the name is the text before the
			// column gap.
			name := strings.TrimSpace(line)
			if i := strings.Index(name, "  "); i > 0 {
				name = name[:i]
			}
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// TestTheDocsAndTheHelpListTheSameCommandsAndFlags keeps docs/cli.md and
// --help in step: the same commands, the same synopsis, the same flags,
// and an example for every command.
func TestTheDocsAndTheHelpListTheSameCommandsAndFlags(t *testing.T) {
	globals, sections := parseCLIDoc(t)
	h := newHarness(t)

	top := h.run("--help")
	if top.code != 0 {
		t.Fatalf("thinctl --help: exit %d\n%s", top.code, top.stderr)
	}
	var docCmds []string
	for name := range sections {
		docCmds = append(docCmds, name)
	}
	sort.Strings(docCmds)
	if got := helpCommands(top.stdout); strings.Join(got, ",") != strings.Join(docCmds, ",") {
		t.Errorf("commands differ\n --help:       %v\n docs/cli.md:  %v", got, docCmds)
	}
	if got := helpFlags(top.stdout, "Global flags"); strings.Join(got, ",") != strings.Join(globals, ",") {
		t.Errorf("global flags differ\n --help:       %v\n docs/cli.md:  %v", got, globals)
	}

	for _, cmd := range visibleCommands() {
		t.Run(cmd.name, func(t *testing.T) {
			sec, ok := sections[cmd.name]
			if !ok {
				t.Fatalf("docs/cli.md has no \"### thinctl %s\" section", cmd.name)
			}
			r := h.run(append(strings.Fields(cmd.name), "--help")...)
			if r.code != 0 {
				t.Fatalf("thinctl %s --help: exit %d\n%s", cmd.name, r.code, r.stderr)
			}
			usage := strings.TrimPrefix(strings.SplitN(r.stdout, "\n\n", 2)[0], "Usage: ")
			if got := strings.Join(strings.Fields(usage), " "); got != sec.synopsis {
				t.Errorf("synopsis differs\n --help:       %s\n docs/cli.md:  %s", got, sec.synopsis)
			}
			helpF := helpFlags(r.stdout, "Flags:")
			if strings.Join(helpF, ",") != strings.Join(sec.flags, ",") {
				t.Errorf("flags differ\n --help:       %v\n docs/cli.md:  %v", helpF, sec.flags)
			}
			for _, f := range helpF {
				if !strings.Contains(sec.synopsis, f) {
					t.Errorf("the synopsis does not mention %s", f)
				}
			}
			if !strings.Contains(sec.example, "thinctl "+cmd.name) && !strings.Contains(sec.example, "thinctl -o json "+cmd.name) {
				t.Errorf("docs/cli.md has no example running thinctl %s", cmd.name)
			}
		})
	}
}

package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// roffText turns the roff the generator writes back into plain text: fonts
// and escapes dropped, one string per output line.
func roffText(s string) string {
	r := strings.NewReplacer(`\fB`, "", `\fR`, "", `\fI`, "", `\-`, "-", `\e`, `\`, `\&`, "", `\(dq`, `"`)
	return r.Replace(s)
}

// manSections splits a page into its .SH sections (name → lines).
func manSections(page string) map[string][]string {
	out := map[string][]string{}
	cur := ""
	for _, l := range strings.Split(page, "\n") {
		if strings.HasPrefix(l, ".SH ") {
			cur = strings.Trim(strings.TrimPrefix(l, ".SH "), `"`)
			continue
		}
		out[cur] = append(out[cur], l)
	}
	return out
}

var manFlagItem = regexp.MustCompile(`^(?:-[a-z], )?--([a-z][a-z-]*)`)

// manFlags lists "--name" of each .TP item of a section, sorted.
func manFlags(lines []string) []string {
	var out []string
	for i, l := range lines {
		if l == ".TP" && i+1 < len(lines) {
			if m := manFlagItem.FindStringSubmatch(roffText(lines[i+1])); m != nil {
				out = append(out, "--"+m[1])
			}
		}
	}
	sort.Strings(out)
	return out
}

// TestManPagesSayWhatTheHelpSays renders the pages and compares each with
// the --help text: thinctl(8) lists the commands and global flags --help
// lists; each command's page has the synopsis, description and flags of
// "thinctl <command> --help".
func TestManPagesSayWhatTheHelpSays(t *testing.T) {
	pages := manPages("2026-01-02", "v9.9.9")
	byName := map[string]string{}
	for _, p := range pages {
		byName[p.name] = p.text
	}
	var top bytes.Buffer
	newApp(&top, &top).run([]string{"--help"})

	t.Run("thinctl(8) lists every command and global flag", func(t *testing.T) {
		main := byName["thinctl"]
		secs := manSections(main)
		var cmds []string
		for i, l := range secs["COMMANDS"] {
			if l == ".TP" {
				cmds = append(cmds, roffText(secs["COMMANDS"][i+1]))
			}
		}
		sort.Strings(cmds)
		if want := helpCommands(top.String()); strings.Join(cmds, ",") != strings.Join(want, ",") {
			t.Errorf("COMMANDS lists %q; --help lists %q", cmds, want)
		}
		if got, want := manFlags(secs["GLOBAL FLAGS"]), helpFlags(top.String(), "Global flags"); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("GLOBAL FLAGS lists %q; --help lists %q", got, want)
		}
		if !strings.Contains(main, `.TH THINCTL 8 "2026-01-02" "thinctl v9.9.9"`) {
			t.Errorf("no .TH line with the date and version:\n%s", main)
		}
	})
	for _, c := range visibleCommands() {
		t.Run(c.name, func(t *testing.T) {
			page, ok := byName[manPageName(c)]
			if !ok {
				t.Fatalf("no page %s(8)", manPageName(c))
			}
			var help bytes.Buffer
			newApp(&help, &help).run(append(strings.Fields(c.name), "--help"))
			parts := strings.SplitN(help.String(), "\n\n", 3)
			usage, detail := strings.TrimPrefix(parts[0], "Usage: thinctl "), parts[1]
			secs := manSections(page)
			norm := func(s string) string { return strings.Join(strings.Fields(s), " ") }
			syn := roffText(strings.Join(secs["SYNOPSIS"], "\n"))
			syn = strings.NewReplacer(".nf", "", ".fi", "").Replace(syn)
			if norm(syn) != norm("thinctl "+usage) {
				t.Errorf("SYNOPSIS %q; --help %q", norm(syn), norm("thinctl "+usage))
			}
			if desc := roffText(strings.Join(secs["DESCRIPTION"], " ")); !strings.Contains(norm(desc), norm(detail)) {
				t.Errorf("DESCRIPTION %q does not hold the help's %q", norm(desc), norm(detail))
			}
			if got, want := manFlags(secs["FLAGS"]), helpFlags(help.String(), "Flags:"); strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("FLAGS lists %q; --help lists %q", got, want)
			}
			if name := roffText(secs["NAME"][0]); name != manPageName(c)+" - "+c.summary {
				t.Errorf("NAME line %q", name)
			}
		})
	}
}

// TestManWritesOnePagePerCommandThatMandocAndGroffAccept runs the hidden
// generator like a package build does and lints every page with mandoc
// -Tlint and groff -ww (Debian's mandoc and groff-base), when installed.
func TestManWritesOnePagePerCommandThatMandocAndGroffAccept(t *testing.T) {
	dir := t.TempDir()
	var out, errb bytes.Buffer
	if code := newApp(&out, &errb).run([]string{"__man", "--dir", dir, "--date", "2026-01-02"}); code != 0 {
		t.Fatalf("thinctl __man: exit %d: %s", code, errb.String())
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.8"))
	if len(files) != len(visibleCommands())+1 {
		t.Fatalf("%d pages for %d commands: %v", len(files), len(visibleCommands()), files)
	}
	linted := false
	for _, tool := range [][]string{{"mandoc", "-Tlint", "-W", "warning"}, {"groff", "-man", "-Tutf8", "-ww", "-z"}} {
		if _, err := exec.LookPath(tool[0]); err != nil {
			t.Logf("%s not installed: not linted with it", tool[0])
			continue
		}
		linted = true
		for _, f := range files {
			cmd := exec.Command(tool[0], append(tool[1:], f)...)
			if b, err := cmd.CombinedOutput(); err != nil || len(b) > 0 {
				t.Errorf("%s %s: %v\n%s", strings.Join(tool, " "), filepath.Base(f), err, b)
			}
		}
	}
	if !linted {
		t.Skip("neither mandoc nor groff installed (make test-packaging installs mandoc)")
	}
}

// TestManRefusesMissingOrBadFlags checks the generator's usage errors, and
// that it stays out of --help.
func TestManRefusesMissingOrBadFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"without --dir", []string{"__man"}, "give --dir DIR"},
		{"with a date that is not YYYY-MM-DD", []string{"__man", "--dir", "x", "--date", "26 Nov 2026"}, `invalid --date "26 Nov 2026": use YYYY-MM-DD`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := newApp(&out, &errb).run(tc.args)
			if code != exitUsage || !strings.Contains(errb.String(), tc.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errb.String(), exitUsage, tc.want)
			}
			if _, err := os.Stat("x"); err == nil {
				t.Errorf("a refused run created x")
			}
		})
	}
	var top bytes.Buffer
	newApp(&top, &top).run([]string{"--help"})
	if strings.Contains(top.String(), "__man") {
		t.Errorf("--help lists the hidden __man:\n%s", top.String())
	}
}

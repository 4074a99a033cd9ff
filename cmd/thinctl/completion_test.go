package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// completionCase is one Tab press: the words on the line (the last one is
// being completed) and what must be offered.
type completionCase struct {
	name  string
	words []string // after "thinctl"
	want  []string // sorted
	ids   bool     // needs the overlay2 root with devices web and db
}

var completionCases = []completionCase{
	{name: "an empty line offers every command's first word",
		words: []string{""}, want: firstWordsSorted()},
	{name: "a prefix offers the matching command", words: []string{"po"}, want: []string{"pool"}},
	{name: "a group offers its subcommands", words: []string{"pool", ""},
		want: []string{"destroy", "down", "grow", "init", "status", "up", "watch"}},
	{name: "a subcommand prefix completes", words: []string{"pool", "in"}, want: []string{"init"}},
	{name: "a flag prefix offers the command's matching flags", words: []string{"pool", "init", "--da"},
		want: []string{"--data-dev", "--data-size"}},
	{name: "digits after a size flag get each unit", words: []string{"pool", "init", "--data-size", "10"},
		want: []string{"10G", "10K", "10M", "10T"}},
	{name: "a size that already has a unit gets nothing", words: []string{"create", "x", "--size", "10G"}},
	{name: "a percentage flag gets the percent sign", words: []string{"pool", "init", "--min-free-space", "5"},
		want: []string{"5%"}},
	{name: "--driver offers every driver", words: []string{"--driver", ""},
		want: []string{"aufs", "auto", "devicemapper", "overlay2"}},
	{name: "--driver=prefix split at the equals sign completes the value", words: []string{"--driver", "=", "ov"},
		want: []string{"overlay2"}},
	{name: "--driver= with nothing after it offers every driver", words: []string{"--driver", "="},
		want: []string{"aufs", "auto", "devicemapper", "overlay2"}},
	{name: "-o offers the output formats", words: []string{"list", "-o", ""}, want: []string{"json", "text"}},
	{name: "--fs offers the filesystems", words: []string{"pool", "init", "--fs", ""}, want: []string{"ext4", "xfs"}},
	{name: "a flag value does not count as the command", words: []string{"--driver", "overlay2", "cre"},
		want: []string{"create"}},
	{name: "completion offers the shells", words: []string{"completion", ""}, want: []string{"bash", "fish", "zsh"}},
	{name: "a command without flags offers only the global ones", words: []string{"gc", "--"},
		want: []string{"--debug", "--driver", "--help", "--output", "--root"}},
	{name: "the ID of a new device gets nothing", words: []string{"create", ""}, ids: true},
	{name: "an ID argument offers the existing devices", words: []string{"mount", ""}, want: []string{"db", "web"}, ids: true},
	{name: "an ID prefix offers the matching devices", words: []string{"info", "w"}, want: []string{"web"}, ids: true},
	{name: "--parent offers the existing devices", words: []string{"create", "x", "--parent", ""},
		want: []string{"db", "web"}, ids: true},
	{name: "a command whose ID is given gets nothing more", words: []string{"info", "web", ""}, ids: true},
}

func firstWordsSorted() []string {
	_, cmds := completionModel()
	w := firstWords(cmds)
	sort.Strings(w)
	return w
}

// completionScript writes shell's script into a temp file.
func completionScript(t *testing.T, shell string) string {
	t.Helper()
	var out bytes.Buffer
	a := newApp(&out, &out)
	if code := a.run([]string{"completion", shell}); code != 0 {
		t.Fatalf("thinctl completion %s: exit %d\n%s", shell, code, out.String())
	}
	path := filepath.Join(t.TempDir(), "thinctl."+shell)
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// completionEnv makes a root with the overlay2 devices web and db, and a
// PATH directory whose "thinctl" is this test binary acting as thinctl
// (TestMain), for the scripts' "thinctl list". It returns the root and the
// environment, or skips when overlay2 cannot be used here.
func completionEnv(t *testing.T) (root string, env []string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("device IDs come from 'thinctl list', which needs root")
	}
	root = filepath.Join(t.TempDir(), "root")
	for _, args := range [][]string{{"pool", "init"}, {"create", "web"}, {"create", "db", "--parent", "web"}} {
		var out bytes.Buffer
		if code := run(context.Background(), append([]string{"--root", root, "--driver", "overlay2"}, args...), &out, &out); code != 0 {
			t.Skipf("overlay2 root for the ID cases: thinctl %s: exit %d: %s", strings.Join(args, " "), code, out.String())
		}
	}
	bin := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(exe, filepath.Join(bin, "thinctl")); err != nil {
		t.Fatal(err)
	}
	return root, append(os.Environ(), "THINCTL_TEST_MAIN=1", "PATH="+bin+":"+os.Getenv("PATH"))
}

// shellWords quotes words for a shell array.
func shellWords(words []string) string {
	var q []string
	for _, w := range words {
		q = append(q, shellQuote(w))
	}
	return strings.Join(q, " ")
}

// lines splits output into sorted non-empty lines (the first tab-separated
// field of each: fish adds descriptions).
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		l, _, _ = strings.Cut(l, "\t")
		if l != "" {
			out = append(out, l)
		}
	}
	sort.Strings(out)
	return out
}

// withRoot puts --root ROOT in front of a case's words when it needs the
// device list.
func (c completionCase) line(root string) []string {
	words := append([]string{"thinctl"}, c.words...)
	if c.ids {
		words = append([]string{"thinctl", "--root", root}, c.words...)
	}
	return words
}

// runShell runs a script in shell and returns its stdout.
func runShell(t *testing.T, env []string, shell string, args ...string) string {
	t.Helper()
	cmd := exec.Command(shell, args...)
	cmd.Env = env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", shell, strings.Join(args, " "), err, out.String(), errb.String())
	}
	if errb.Len() > 0 {
		t.Errorf("%s wrote to stderr:\n%s", shell, errb.String())
	}
	return out.String()
}

// TestBashCompletionOffersWhatTheCommandTableHas presses Tab in bash: the
// generated script is sourced and its function run on each case's words.
func TestBashCompletionOffersWhatTheCommandTableHas(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	script := completionScript(t, "bash")
	root, env := completionEnv(t)
	for _, c := range completionCases {
		t.Run(c.name, func(t *testing.T) {
			words := c.line(root)
			got := lines(runShell(t, env, "bash", "-c", fmt.Sprintf(
				`source %s; COMP_WORDS=(%s); COMP_CWORD=%d; __thinctl_complete; printf '%%s\n' "${COMPREPLY[@]}"`,
				shellQuote(script), shellWords(words), len(words)-1)))
			if strings.Join(got, " ") != strings.Join(c.want, " ") {
				t.Errorf("Tab after %q offers %q, want %q", strings.Join(words, " "), got, c.want)
			}
		})
	}
}

// TestBashCompletionOffersEveryCommandAndEveryFlagHelpLists ties the
// completion to --help: every command --help lists completes from its
// first letters, and "<command> --" offers exactly the flags
// "<command> --help" lists plus the global ones.
func TestBashCompletionOffersEveryCommandAndEveryFlagHelpLists(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	script := completionScript(t, "bash")
	complete := func(t *testing.T, words ...string) []string {
		return lines(runShell(t, os.Environ(), "bash", "-c", fmt.Sprintf(
			`source %s; COMP_WORDS=(%s); COMP_CWORD=%d; __thinctl_complete; printf '%%s\n' "${COMPREPLY[@]}"`,
			shellQuote(script), shellWords(words), len(words)-1)))
	}
	var top bytes.Buffer
	newApp(&top, &top).run([]string{"--help"})
	globalF := helpFlags(top.String(), "Global flags")
	for _, name := range helpCommands(top.String()) {
		t.Run(name, func(t *testing.T) {
			words := append([]string{"thinctl"}, strings.Fields(name)...)
			last := words[len(words)-1]
			prefix := append(words[:len(words)-1:len(words)-1], last[:2])
			if got := complete(t, prefix...); !contains(got, last) {
				t.Errorf("Tab after %q offers %q, not %q", strings.Join(prefix, " "), got, last)
			}
			var help bytes.Buffer
			newApp(&help, &help).run(append(strings.Fields(name), "--help"))
			want := append(helpFlags(help.String(), "Flags:"), globalF...)
			want = append(want, "--help")
			sort.Strings(want)
			var got []string
			for _, f := range complete(t, append(words, "--")...) {
				got = append(got, f)
			}
			if strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("Tab after %q offers %q; --help lists %q", strings.Join(words, " ")+" --", got, want)
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestZshCompletionRunsTheSameFunction loads the zsh script with compinit
// and runs its function the way bashcompinit's compgen -F does (sh
// emulation), every case in one zsh (compinit takes most of a second);
// zsh filters by prefix itself, so the test does too before comparing.
func TestZshCompletionRunsTheSameFunction(t *testing.T) {
	if _, err := exec.LookPath("zsh"); err != nil {
		t.Skip("no zsh (Debian's zsh package)")
	}
	script := completionScript(t, "zsh")
	root, env := completionEnv(t)
	var cases []completionCase
	prog := "autoload -U compinit && compinit -D -u; source " + shellQuote(script) + `
t() { emulate -L sh; setopt kshglob noshglob braceexpand; COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); __thinctl_complete; print -l -r -- "${COMPREPLY[@]}"; }
`
	for _, c := range completionCases {
		if strings.Contains(strings.Join(c.words, " "), "=") {
			continue // zsh does not split words at '='
		}
		cases = append(cases, c)
		prog += fmt.Sprintf("print -r -- '=== %d'; t %s\n", len(cases)-1, shellWords(c.line(root)))
	}
	out := runShell(t, env, "zsh", "-f", "-c", prog)
	answers := strings.Split(out, "=== ")[1:]
	if len(answers) != len(cases) {
		t.Fatalf("zsh answered %d cases of %d:\n%s", len(answers), len(cases), out)
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			words := c.line(root)
			cur := words[len(words)-1]
			var got []string
			for _, w := range lines(strings.SplitN(answers[i], "\n", 2)[1]) {
				if strings.HasPrefix(w, cur) {
					got = append(got, w)
				}
			}
			if strings.Join(got, " ") != strings.Join(c.want, " ") {
				t.Errorf("Tab after %q offers %q, want %q", strings.Join(words, " "), got, c.want)
			}
		})
	}
}

// TestFishCompletionOffersWhatTheCommandTableHas asks fish itself
// (complete -C) with the generated script sourced.
func TestFishCompletionOffersWhatTheCommandTableHas(t *testing.T) {
	if _, err := exec.LookPath("fish"); err != nil {
		t.Skip("no fish (Debian's fish package)")
	}
	script := completionScript(t, "fish")
	root, env := completionEnv(t)
	for _, c := range completionCases {
		if strings.Contains(strings.Join(c.words, " "), "=") {
			continue // fish keeps --flag=value as one token: covered below
		}
		t.Run(c.name, func(t *testing.T) {
			words := c.line(root)
			line := strings.Join(words, " ")
			out := runShell(t, append(env, "HOME="+t.TempDir()), "fish", "--no-config", "-c",
				fmt.Sprintf("source %s; complete -C%s", shellQuote(script), shellQuote(line)))
			if got := lines(out); strings.Join(got, " ") != strings.Join(c.want, " ") {
				t.Errorf("Tab after %q offers %q, want %q", line, got, c.want)
			}
		})
	}
}

// TestCompletionRefusesAnUnknownShell checks the usage error.
func TestCompletionRefusesAnUnknownShell(t *testing.T) {
	var out, errb bytes.Buffer
	code := newApp(&out, &errb).run([]string{"completion", "tcsh"})
	if code != exitUsage || !strings.Contains(errb.String(), `unknown shell "tcsh": use bash, zsh or fish`) || out.Len() != 0 {
		t.Errorf("thinctl completion tcsh: exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
}

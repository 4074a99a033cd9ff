package main

import (
	"bytes"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinctl/thinctl/driver"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// TestMain lets the test binary act as thinctl itself: with
// THINCTL_TEST_MAIN=1 it runs the command line in its arguments and exits,
// so tests can run every command as a separate process, like an operator.
func TestMain(m *testing.M) {
	if os.Getenv("THINCTL_TEST_MAIN") == "1" {
		os.Exit(runMain(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// result is one in-process thinctl run.
type result struct {
	code           int
	stdout, stderr string
}

// harness runs thinctl in-process with a controlled environment.
type harness struct {
	t    testing.TB
	root string
	env  map[string]string
	euid int
	// choose, when set, replaces driver selection.
	choose func(root, name string) (driver.Choice, error)
}

func newHarness(t testing.TB) *harness {
	return &harness{t: t, root: t.TempDir(), env: map[string]string{}, euid: 0}
}

// app returns an app writing to the given buffers with the harness's
// environment: fixed kernel facts, no terminal.
func (h *harness) app(stdout, stderr *bytes.Buffer) *app {
	a := newApp(stdout, stderr)
	a.getenv = func(k string) string { return h.env[k] }
	a.geteuid = func() int { return h.euid }
	a.isTerminal = func(io.Writer) bool { return false }
	a.uname = func() string { return "6.1.0-test-amd64" }
	a.dmVersion = func() string { return "" }
	if h.choose != nil {
		a.choose = h.choose
	}
	return a
}

// run runs thinctl with --root set to the harness's root (unless args
// already name one or env sets it) and returns its outcome.
func (h *harness) run(args ...string) result {
	h.t.Helper()
	var out, errb bytes.Buffer
	code := h.app(&out, &errb).run(args)
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// rooted prepends --root <h.root>.
func (h *harness) rooted(args ...string) result {
	h.t.Helper()
	return h.run(append([]string{"--root", h.root}, args...)...)
}

// must runs args under the harness root and fails the test unless it
// exits 0.
func (h *harness) must(args ...string) result {
	h.t.Helper()
	r := h.rooted(args...)
	if r.code != 0 {
		h.t.Fatalf("thinctl %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// normalize replaces the harness's temp root with $ROOT.
func (h *harness) normalize(s string) string {
	return strings.ReplaceAll(s, h.root, "$ROOT")
}

// golden compares got with testdata/<name>.golden, rewriting it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (go test -update rewrites it)\n--- got:\n%s\n--- want:\n%s", path, got, want)
	}
}

//go:build !vm

package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/thinctl/thinctl/internal/failpoint"
)

// failpointPkg prefixes the symbols of package failpoint in a binary.
const failpointPkg = "github.com/thinctl/thinctl/internal/failpoint."

// armedSymbols are functions of the failpoint package that only a build
// with the failpoints tag has: the action code (SIGKILL, panic, SIGSTOP)
// and the init that reads THINCTL_FAILPOINTS.
var armedSymbols = []string{failpointPkg + "fire", failpointPkg + "stopThisThread", failpointPkg + "init.0"}

// TestTheReleaseBinaryHasNoFailpoints builds thinctl through `make build`
// (the Makefile's own line, into a temporary BIN) and checks that nothing
// in it can arm a failpoint: the name THINCTL_FAILPOINTS is not in the
// file, so no code reads that variable, and the failpoint package left no
// code but its variables' initialisation. The same make build with
// GOFLAGS=-tags=failpoints is the contrast: there the name, the action
// code and the init that reads the variable are all present. (On this host
// no point is reachable — every one sits behind device-mapper — so the
// kill that does nothing is shown by internal/failpoint's untagged tests,
// and the kill that fires by the crash tests in the VM.)
func TestTheReleaseBinaryHasNoFailpoints(t *testing.T) {
	if failpoint.Env != "THINCTL_FAILPOINTS" {
		t.Fatalf("failpoint.Env = %q; this test looks for THINCTL_FAILPOINTS", failpoint.Env)
	}
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goTool); err != nil {
		t.Skipf("no Go toolchain at %s: %v", goTool, err)
	}
	makeTool, err := exec.LookPath("make")
	if err != nil {
		t.Skip("make is not installed: the release build is the Makefile's")
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	build := func(name, goflags string) string {
		t.Helper()
		bin := filepath.Join(dir, name)
		cmd := exec.Command(makeTool, "-s", "-C", root, "build", "GO="+goTool, "BIN="+bin)
		cmd.Env = append(envWithout(os.Environ(), "GOFLAGS", "MAKEFLAGS", "MFLAGS"), "GOFLAGS="+goflags)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("make build BIN=%s GOFLAGS=%q: %v\n%s", bin, goflags, err, out)
		}
		return bin
	}
	release := build("thinctl", "")
	tagged := build("thinctl-failpoints", "-tags=failpoints")

	tests := []struct {
		name      string
		bin       string
		wantArmed bool
	}{
		{name: "make build has no failpoints", bin: release, wantArmed: false},
		{name: "make build with the failpoints tag has them", bin: tagged, wantArmed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := os.ReadFile(tt.bin)
			if err != nil {
				t.Fatal(err)
			}
			if got := bytes.Contains(data, []byte(failpoint.Env)); got != tt.wantArmed {
				t.Errorf("the binary contains %q: %v, want %v", failpoint.Env, got, tt.wantArmed)
			}
			code := failpointCode(t, goTool, tt.bin)
			for _, s := range armedSymbols {
				if got := code[s]; got != tt.wantArmed {
					t.Errorf("the binary has the function %s: %v, want %v (%d functions of package failpoint in it)", s, got, tt.wantArmed, len(code))
				}
			}
			if !tt.wantArmed {
				for s := range code {
					if s != failpointPkg+"init" { // ErrInjected and ErrNotCompiled are made at start-up
						t.Errorf("the release binary has failpoint code %s", s)
					}
				}
			}
			out, err := exec.Command(goTool, "version", "-m", tt.bin).Output()
			if err != nil {
				t.Fatalf("go version -m: %v", err)
			}
			if got := strings.Contains(string(out), "failpoints"); got != tt.wantArmed {
				t.Errorf("go version -m names the failpoints tag: %v, want %v\n%s", got, tt.wantArmed, out)
			}
			if !strings.Contains(string(out), "-trimpath=true") {
				t.Errorf("go version -m shows no -trimpath: not built as make build does\n%s", out)
			}
		})
	}
}

// failpointCode returns the set of text (code) symbols of package
// failpoint in bin, as `go tool nm` lists them.
func failpointCode(t *testing.T, goTool, bin string) map[string]bool {
	t.Helper()
	out, err := exec.Command(goTool, "tool", "nm", bin).Output()
	if err != nil {
		t.Fatalf("go tool nm %s: %v", bin, err)
	}
	code := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && (f[1] == "T" || f[1] == "t") && strings.HasPrefix(f[2], failpointPkg) {
			code[f[2]] = true
		}
	}
	if len(out) == 0 {
		t.Fatalf("go tool nm %s listed no symbols", bin)
	}
	return code
}

// envWithout returns env without the variables named.
func envWithout(env []string, names ...string) []string {
	var out []string
next:
	for _, kv := range env {
		for _, n := range names {
			if strings.HasPrefix(kv, n+"=") {
				continue next
			}
		}
		out = append(out, kv)
	}
	return out
}

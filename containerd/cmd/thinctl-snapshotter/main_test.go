package main

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runMainEnv makes the test binary run main instead of the tests: the VM
// tests start the snapshotter as a process of its own (to kill it) from
// the one binary the rig copies into the guest.
const runMainEnv = "THINCTL_SNAPSHOTTER_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		os.Exit(run(os.Args[1:], os.Stderr, nil))
	}
	os.Exit(m.Run())
}

func TestBadInvocationsExitWithOneLineNamingTheFix(t *testing.T) {
	overlay := t.TempDir()
	if err := os.Mkdir(filepath.Join(overlay, "overlay2"), 0o700); err != nil {
		t.Fatal(err)
	}
	empty := t.TempDir()
	for _, c := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"a root without a pool names pool init", []string{"--root", empty, "--address", "/run/x.sock"}, 1,
			"no thinctl thin pool under " + empty + ": run `thinctl --root " + empty + " --driver devicemapper pool init` first"},
		{"a root of another backend is refused by name", []string{"--root", overlay, "--address", "/run/x.sock"}, 1,
			"holds a thinctl overlay2 store, and thinctl-snapshotter serves only the devicemapper backend"},
		{"a relative socket path is refused", []string{"--root", empty, "--address", "x.sock"}, 2,
			`--address "x.sock": give an absolute socket path`},
		{"a stray argument is refused", []string{"serve"}, 2, `unexpected argument "serve"`},
		{"an unknown flag is refused", []string{"--pool", "x"}, 2, "flag provided but not defined: -pool"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var stderr bytes.Buffer
			code := run(c.args, &stderr, nil)
			if code != c.code || !strings.Contains(stderr.String(), c.want) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", code, stderr.String(), c.code, c.want)
			}
			if c.code == 1 && strings.Count(strings.TrimSpace(stderr.String()), "\n") != 0 {
				t.Fatalf("the refusal takes more than one line: %q", stderr.String())
			}
		})
	}
	t.Run("the refused root is left as it was", func(t *testing.T) {
		if entries, err := os.ReadDir(empty); err != nil || len(entries) != 0 {
			t.Fatalf("the empty root now holds %v (%v)", entries, err)
		}
	})
}

func TestListenReplacesOnlyAStaleSocket(t *testing.T) {
	dir := t.TempDir()
	t.Run("a socket nobody serves is replaced", func(t *testing.T) {
		sock := filepath.Join(dir, "stale.sock")
		l, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		l.(*net.UnixListener).SetUnlinkOnClose(false)
		l.Close()
		l2, err := listen(sock)
		if err != nil {
			t.Fatalf("listen on a stale socket: %v", err)
		}
		l2.Close()
	})
	t.Run("a live socket is refused", func(t *testing.T) {
		sock := filepath.Join(dir, "live.sock")
		l, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		if _, err := listen(sock); err == nil || !strings.Contains(err.Error(), "something already serves") {
			t.Fatalf("listen on a live socket = %v", err)
		}
	})
	t.Run("a regular file is refused and kept", func(t *testing.T) {
		file := filepath.Join(dir, "file")
		if err := os.WriteFile(file, []byte("keep"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := listen(file); err == nil || !strings.Contains(err.Error(), "is not a socket") {
			t.Fatalf("listen on a regular file = %v", err)
		}
		if b, err := os.ReadFile(file); err != nil || string(b) != "keep" {
			t.Fatalf("the file now reads %q (%v)", b, err)
		}
	})
}

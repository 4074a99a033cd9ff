package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// serveEnv, when set, makes the test binary thinctl-csi itself, with the
// arguments it holds (separated by newlines): the VM's kill tests run the
// driver as a process of its own, to SIGKILL it.
const serveEnv = "THINCTL_CSI_TEST_SERVE"

func TestMain(m *testing.M) {
	if args := os.Getenv(serveEnv); args != "" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
		code := run(ctx, strings.Split(args, "\n"), os.Stderr, nil)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

func TestBadFlagsGetOneLineNamingTheFix(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{}, "--node-id is required"},
		{[]string{"--node-id", "n", "--endpoint", "relative.sock"}, "give unix:///absolute/path"},
		{[]string{"--node-id", "n", "--endpoint", "tcp://1.2.3.4:5"}, "give unix:///absolute/path"},
		{[]string{"--node-id", "n", "--path-root", "/"}, "--path-root"},
		{[]string{"--node-id", "n", "--path-root", "/var/lib/../lib/kubelet"}, "--path-root"},
		{[]string{"--node-id", "n", "extra"}, "unexpected argument"},
	} {
		var out bytes.Buffer
		if code := run(context.Background(), c.args, &out, nil); code != 2 {
			t.Errorf("%v: exit %d", c.args, code)
		}
		if !strings.Contains(out.String(), c.want) || strings.Count(strings.TrimSpace(out.String()), "\n") != 0 {
			t.Errorf("%v: %q, want one line with %q", c.args, out.String(), c.want)
		}
	}
}

func TestARootWithoutAPoolIsRefusedWithWhatToRun(t *testing.T) {
	root := t.TempDir()
	var out bytes.Buffer
	code := run(context.Background(), []string{"--node-id", "n", "--root", root, "--endpoint", filepath.Join(root, "s.sock")}, &out, nil)
	if code != 1 || !strings.Contains(out.String(), "pool init") {
		t.Fatalf("exit %d: %s", code, out.String())
	}
	if _, err := os.Stat(filepath.Join(root, "s.sock")); !os.IsNotExist(err) {
		t.Fatalf("a socket was made: %v", err)
	}
}

func TestListenRefusesAFileAndALiveSocketAndReplacesAStaleOne(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := listen(file); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("%v", err)
	}
	if b, _ := os.ReadFile(file); string(b) != "keep" {
		t.Fatal("the file was touched")
	}
	sock := filepath.Join(dir, "sub", "csi.sock")
	l, err := listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{sock, filepath.Dir(sock)} {
		st, err := os.Stat(p)
		if err != nil || st.Mode().Perm()&0o077 != 0 {
			t.Fatalf("%s: %v %v", p, st.Mode(), err)
		}
	}
	if _, err := listen(sock); err == nil || !strings.Contains(err.Error(), "already serves") {
		t.Fatalf("%v", err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	l, err = listen(sock) // stale now
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
}

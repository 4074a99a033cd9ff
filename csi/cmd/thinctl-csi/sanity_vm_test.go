//go:build vm

package main

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubernetes-csi/csi-test/v5/pkg/sanity"

	"github.com/thinctl/thinctl/internal/testenv"
	"github.com/thinctl/thinctl/thinpool"
)

// testPool keeps the pool small: the guest is emulated. The base device is
// 32 MiB, so a 64 MiB volume is a snapshot grown once (resize2fs on its
// first activation).
var testPool = thinpool.Options{DataSize: 2 * thinpool.GiB, MetadataSize: 64 * thinpool.MiB, BaseSize: 32 * thinpool.MiB}

// server is a thinctl-csi serving a fresh pool.
type server struct {
	root, pathRoot, sock string
	log                  *testenv.LockedBuffer
}

// startServer makes a pool and runs the command on it until the test
// ends; then it checks that registry, pool metadata and live devices
// agree and takes the pool down.
func startServer(t *testing.T) *server {
	t.Helper()
	return startServerWith(t, testPool)
}

// startServerWith is startServer on a pool made with opts.
func startServerWith(t *testing.T, opts thinpool.Options) *server {
	t.Helper()
	testenv.RequireDeviceMapper(t)
	testenv.RequireTool(t, "mkfs.ext4")
	ctx := context.Background()
	s := &server{root: t.TempDir(), pathRoot: filepath.Join(t.TempDir(), "kubelet"), log: &testenv.LockedBuffer{}}
	if err := os.Mkdir(s.pathRoot, 0o750); err != nil {
		t.Fatal(err)
	}
	p, err := thinpool.Init(ctx, s.root, opts)
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	dir, err := os.MkdirTemp("/tmp", "csi") // unix socket paths end at 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	s.sock = filepath.Join(dir, "plugin", "csi.sock")
	srvCtx, cancel := context.WithCancel(ctx)
	ready := make(chan struct{})
	done := make(chan int, 1)
	go func() {
		done <- run(srvCtx, []string{"--root", s.root, "--endpoint", "unix://" + s.sock, "--node-id", "node-1",
			"--path-root", s.pathRoot}, s.log, func() { close(ready) })
	}()
	select {
	case <-ready:
	case code := <-done:
		t.Fatalf("thinctl-csi exited %d: %s", code, s.log.String())
	case <-time.After(time.Minute):
		t.Fatalf("thinctl-csi did not start in a minute: %s", s.log.String())
	}
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("thinctl-csi exited %d", code)
		}
		os.RemoveAll(dir)
		if t.Failed() {
			t.Logf("thinctl-csi's log:\n%s", s.log.String())
		}
		checkAndDown(t, s.root)
	})
	return s
}

// checkAndDown fails when the pool's Check finds anything or a device is
// left, and takes the pool down.
func checkAndDown(t *testing.T, root string) {
	t.Helper()
	ctx := context.Background()
	p, err := thinpool.Open(ctx, root, thinpool.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := p.GC(ctx); err != nil {
		t.Errorf("gc: %v", err)
	}
	rep, err := p.Check(ctx, thinpool.CheckOptions{})
	if err != nil {
		t.Errorf("check: %v", err)
	}
	for _, pr := range rep.Problems {
		t.Errorf("check after the test: %s %s: %s", pr.Kind, pr.ID, pr.Detail)
	}
	devs, err := p.Devices()
	if err != nil {
		t.Error(err)
	}
	for _, d := range devs {
		t.Errorf("device %s (labels %v) is left after the test", d.ID, d.Labels)
	}
	if err := p.Down(ctx); err != nil {
		t.Errorf("down: %v", err)
	}
}

// onlyWithoutUdev skips t in the VM rig's boot with udev: make test boots
// the guest twice and these tests take about 80 s there (the sanity suite,
// which runs in both boots, covers the requests with udev). A run that
// names the test with -test.run runs it in either boot.
func onlyWithoutUdev(t *testing.T) {
	if m := os.Getenv("THINCTL_VM_MODE"); m == "" || m == "noudev" {
		return
	}
	if f := flag.Lookup("test.run"); f != nil && f.Value.String() != "" {
		return
	}
	t.Skip("runs in the VM boot without udev; name it with --run to run it here")
}

// TestTheCSISanitySuitePassesOnARealPool runs kubernetes-csi's sanity
// suite against the command serving a real thin pool: it creates, stages,
// publishes, snapshots and deletes volumes through the socket.
func TestTheCSISanitySuitePassesOnARealPool(t *testing.T) {
	s := startServer(t)
	cfg := sanity.NewTestConfig()
	cfg.Address = "unix://" + s.sock
	cfg.TargetPath = filepath.Join(s.pathRoot, "pods", "target")
	cfg.StagingPath = filepath.Join(s.pathRoot, "plugins", "staging")
	for _, d := range []string{filepath.Dir(cfg.TargetPath), filepath.Dir(cfg.StagingPath)} {
		if err := os.Mkdir(d, 0o750); err != nil {
			t.Fatal(err)
		}
	}
	cfg.TestVolumeSize = 64 << 20
	cfg.IdempotentCount = 3
	// Every spec with its result, and why a skipped one was skipped.
	for _, f := range []string{"ginkgo.v", "ginkgo.no-color"} {
		if err := flag.Set(f, "true"); err != nil {
			t.Fatal(err)
		}
	}
	sanity.Test(t, cfg)
}

// TestTheSocketIsOnlyRoots checks the socket's and its directory's modes
// as the command leaves them.
func TestTheSocketIsOnlyRoots(t *testing.T) {
	s := startServer(t)
	for _, p := range []string{s.sock, filepath.Dir(s.sock)} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v: group and others can reach it", p, st.Mode())
		}
	}
	if !strings.Contains(s.log.String(), "serving CSI") {
		t.Errorf("log: %s", s.log.String())
	}
}

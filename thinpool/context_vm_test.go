//go:build vm

package thinpool

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/thinctl/thinctl/internal/failpoint"
	"github.com/thinctl/thinctl/loopback"
	"github.com/thinctl/thinctl/thinpool/internal/dmname"
)

// dmState is "ACTIVE" or "SUSPENDED" as dmsetup (the oracle) reports name.
func dmState(t *testing.T, name string) string {
	t.Helper()
	for _, line := range strings.Split(mustDmsetup(t, "info", name), "\n") {
		if v, ok := strings.CutPrefix(line, "State:"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("dmsetup info %s has no State line", name)
	return ""
}

func arm(t *testing.T, spec string) {
	t.Helper()
	if err := failpoint.Enable(spec); err != nil {
		t.Fatalf("failpoint %s: %v", spec, err)
	}
	t.Cleanup(failpoint.Disable)
}

// Init stopped while mkfs runs returns the context's error promptly and
// leaves no state, no device-mapper device and no loop device behind.
func TestInitStoppedByItsContextLeavesNothing(t *testing.T) {
	root := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o := smallOptions()
	o.BaseSize = 8 * GiB // mkfs.ext4 with lazy init off takes a while here
	var stoppedAt time.Time
	o.Progress = func(step string, _ float64) {
		if strings.HasPrefix(step, "formatting") {
			stoppedAt = time.Now()
			cancel()
		}
	}
	p, err := Init(ctx, root, o)
	if err == nil {
		p.Close()
		t.Fatal("Init with a context cancelled during mkfs succeeded")
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Init = %v, want context.Canceled", err)
	}
	if d := time.Since(stoppedAt); d > 10*time.Second {
		t.Fatalf("Init returned %s after its context was cancelled", d)
	}
	if Exists(root) {
		t.Fatal("a stopped Init left pool.json")
	}
	key, kerr := dmname.RootKey(root)
	must(t, kerr)
	if out := mustDmsetup(t, "ls"); strings.Contains(out, key) {
		t.Fatalf("a stopped Init left device-mapper devices:\n%s", out)
	}
	for _, f := range []string{"data", "metadata"} {
		if info, err := loopback.FindByBackingFile(root + "/devicemapper/" + f); err == nil {
			t.Fatalf("a stopped Init left %s bound to %s", info.Path, f)
		}
	}
	// The root is usable: a new Init succeeds.
	p, err = Init(context.Background(), root, smallOptions())
	must(t, err)
	p.Close()
	tearDown(t, root)
}

// A Create stopped while its active parent is suspended returns the
// context's error, creates nothing and leaves the parent active.
func TestCreateStoppedWithItsParentSuspendedResumesIt(t *testing.T) {
	p, _ := newVMPool(t, smallOptions())
	ctx := context.Background()
	_, origin := createActive(t, p, "parent")

	arm(t, failpoint.SnapAfterSuspend+"=sleep:1500ms")
	cctx, cancel := context.WithCancel(ctx)
	go func() { time.Sleep(300 * time.Millisecond); cancel() }()
	err := p.Create(cctx, "child", "parent", CreateOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Create = %v, want context.Canceled", err)
	}
	if s := dmState(t, origin); s != "ACTIVE" {
		t.Fatalf("the parent is %s after the stopped Create, want ACTIVE", s)
	}
	if _, err := p.Device("child"); !isErr(err, ErrDeviceNotFound) {
		t.Fatalf("a stopped Create left device child: %v", err)
	}
}

// The resume after create_snap can fail; Create must say so rather than
// return success with its parent's I/O held, and the next Open resumes it.
func TestCreateReturnsAFailedResumeOfItsParent(t *testing.T) {
	p, root := newVMPool(t, smallOptions())
	ctx := context.Background()
	path, origin := createActive(t, p, "parent")

	arm(t, failpoint.SnapBeforeResume+"=error")
	err := p.Create(ctx, "child", "parent", CreateOptions{})
	if err == nil || !strings.Contains(err.Error(), "resume "+origin) {
		t.Fatalf("Create with a failing resume = %v, want an error naming the resume of %s", err, origin)
	}
	if s := dmState(t, origin); s != "SUSPENDED" {
		t.Fatalf("dmsetup says the parent is %s; the injected failure should have left it SUSPENDED", s)
	}
	failpoint.Disable()
	q, err := Open(ctx, root, OpenOptions{})
	must(t, err)
	q.Close()
	if s := dmState(t, origin); s != "ACTIVE" {
		t.Fatalf("after Open the parent is %s, want ACTIVE", s)
	}
	f, err := os.Open(path)
	must(t, err)
	buf := make([]byte, 4096)
	_, err = f.Read(buf) // would hang on a suspended device
	f.Close()
	must(t, err)

	// A panic between suspend and resume (any failure path) resumes too.
	arm(t, failpoint.TxAfterMessage+"=panic")
	func() {
		defer func() { recover() }()
		_ = p.Create(ctx, "other", "parent", CreateOptions{})
	}()
	failpoint.Disable()
	if s := dmState(t, origin); s != "ACTIVE" {
		t.Fatalf("after a failure inside Create the parent is %s, want ACTIVE", s)
	}
}

// A space return stopped during its discard (Close stops it so) leaves the
// removed device recorded as returning space, and GC finishes it. (Remove
// itself no longer discards: see remove_return.go.)
func TestASpaceReturnStoppedDuringTheDiscardIsFinishedByGC(t *testing.T) {
	p, _ := newVMPool(t, smallOptions())
	ctx := context.Background()
	createActive(t, p, "gone") // active: its return discards it (an inactive one's is not discarded)
	devID := mustDeviceID(t, p, "gone")
	reached, release := blockDiscard(t)
	must(t, p.Remove(ctx, "gone"))
	<-reached // hold the background return, then stop it as Close does
	stopped := make(chan struct{})
	go func() { p.stopReturning(false); close(stopped) }()
	time.Sleep(50 * time.Millisecond)
	release()
	<-stopped
	hookBeforeDiscardOpen = nil
	if st, err := p.Status(); err != nil || st.ReturningDevices != 1 {
		t.Fatalf("Status after a stopped return: %d devices returning space (%v), want 1", st.ReturningDevices, err)
	}
	if _, err := p.Device("gone"); !isErr(err, ErrDeviceNotFound) {
		t.Fatalf("Device(gone) after Remove = %v, want ErrDeviceNotFound", err)
	}
	removed, err := p.GC(context.Background())
	must(t, err)
	if len(removed) != 0 {
		t.Fatalf("GC removed %v, want no user ids (gone was removed before)", removed)
	}
	if st, err := p.Status(); err != nil || st.ReturningDevices != 0 {
		t.Fatalf("Status after GC: %d devices returning space (%v), want 0", st.ReturningDevices, err)
	}
	for _, id := range thinDumpIDs(t, p.metaFilePath()) {
		if id == devID {
			t.Fatalf("thin id %d is still in the pool after GC", id)
		}
	}
}

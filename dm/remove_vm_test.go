//go:build vm

package dm

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"
)

func TestRemovingAnOpenDeviceFailsWithErrBusyAfterRetrying(t *testing.T) {
	c := vmClient(t)
	name := devName(t)
	activate(t, c, name, []Target{{Start: 0, Length: 2048, Type: "zero"}}, LoadOptions{})
	f, err := os.Open(NodePath(name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if info := wantInfoMatchesDmsetup(t, c, name); info.OpenCount != 1 {
		t.Fatalf("OpenCount = %d, want 1", info.OpenCount)
	}
	start := time.Now()
	err = c.Remove(context.Background(), name, RemoveOptions{})
	took := time.Since(start)
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("Remove of an open device = %v, want ErrBusy", err)
	}
	if took < 500*time.Millisecond {
		t.Errorf("Remove gave up after %v; the default retries span about a second", took)
	}
	t.Logf("busy remove gave up after %v: %v", took, err)
	if err := c.Remove(context.Background(), name, RemoveOptions{Retries: -1}); !errors.Is(err, ErrBusy) {
		t.Fatalf("Remove without retries = %v, want ErrBusy", err)
	}
	wantNode(t, name, mustInfo(t, c, name).Dev)
}

func TestADeferredRemoveIsPendingUntilCancelledOrTheLastClose(t *testing.T) {
	c := vmClient(t)
	name := devName(t)
	info := activate(t, c, name, []Target{{Start: 0, Length: 2048, Type: "zero"}}, LoadOptions{})
	f, err := os.Open(NodePath(name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	if err := c.Remove(context.Background(), name, RemoveOptions{Deferred: true}); err != nil {
		t.Fatalf("deferred Remove: %v", err)
	}
	if got := mustInfo(t, c, name); !got.DeferredRemove {
		t.Fatalf("Info after deferred Remove = %+v, want DeferredRemove", got)
	}
	wantNode(t, name, info.Dev)
	if err := c.CancelDeferredRemove(name); err != nil {
		t.Fatal(err)
	}
	if got := mustInfo(t, c, name); got.DeferredRemove {
		t.Fatalf("Info after cancel = %+v, want no pending removal", got)
	}

	if err := c.Remove(context.Background(), name, RemoveOptions{Deferred: true}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	gone := eventually(10*time.Second, func() bool {
		_, err := c.Info(name)
		return errors.Is(err, ErrNotFound)
	})
	if !gone {
		t.Fatalf("the device outlived its last close: %+v", mustInfo(t, c, name))
	}
	if c.UdevRunning() {
		if !eventually(10*time.Second, func() bool { _, err := os.Lstat(NodePath(name)); return os.IsNotExist(err) }) {
			t.Fatalf("udev left %s behind", NodePath(name))
		}
		return
	}
	// Without udev the node outlives the device until the name is reused.
	if _, err := os.Lstat(NodePath(name)); err != nil {
		t.Fatalf("node after deferred removal: %v (documented to stay)", err)
	}
	if err := c.Remove(context.Background(), name, RemoveOptions{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Remove of the removed device = %v, want ErrNotFound", err)
	}
	wantNoNode(t, name)
}

func mustInfo(t *testing.T, c *Client, name string) Info {
	t.Helper()
	info, err := c.Info(name)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// The busy retries (20 of them span about a minute) end with the caller's
// context; the device and its holder are left as they were.
func TestBusyRemoveRetriesEndWithTheContext(t *testing.T) {
	c := vmClient(t)
	name := devName(t)
	activate(t, c, name, []Target{{Start: 0, Length: 2048, Type: "zero"}}, LoadOptions{})
	f, err := os.Open(NodePath(name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = c.Remove(ctx, name, RemoveOptions{Retries: 20})
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrBusy) {
		t.Fatalf("Remove = %v, want the deadline and ErrBusy", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("Remove returned %v after a 300ms deadline", took)
	}
	if _, err := f.Read(make([]byte, 512)); err != nil {
		t.Fatalf("the holder cannot read after the stopped Remove: %v", err)
	}
	wantInfoMatchesDmsetup(t, c, name)
}

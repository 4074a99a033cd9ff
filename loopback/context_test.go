package loopback

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"
)

// Detach waits for a plain opener (up to 10 s) to let go; a caller's
// deadline cuts that wait short, and the kernel still detaches the device
// on the opener's last close.
func TestDetachStopsWaitingWhenItsContextEnds(t *testing.T) {
	requireLoop(t)
	p := backingFile(t, "held", 8<<20)
	info, err := Attach(context.Background(), p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	holder, err := os.Open(info.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = Detach(ctx, info.Path)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Detach of a held device = %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Detach returned %s after a 200ms deadline", d)
	}
	// The holder still reads its device.
	if _, err := holder.ReadAt(make([]byte, 4096), 0); err != nil {
		t.Fatalf("the holder cannot read its device after the stopped Detach: %v", err)
	}
	holder.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		now, err := GetInfo(info.Path)
		if errors.Is(err, ErrNotFound) || (err == nil && now.BackingInode != info.BackingInode) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the kernel did not detach %s after the last close: %+v %v", info.Path, now, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestAttachWithAnEndedContextBindsNothing(t *testing.T) {
	requireLoop(t)
	p := backingFile(t, "never", 8<<20)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Attach(ctx, p, Options{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Attach with a cancelled context = %v, want context.Canceled", err)
	}
	if info, err := FindByBackingFile(p); err == nil {
		t.Fatalf("a cancelled Attach bound %s", info.Path)
	}
}

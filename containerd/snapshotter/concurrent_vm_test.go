//go:build vm

package snapshotter

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/errdefs"
)

// TestConcurrentPreparesOfOneNameMakeOneSnapshotAndOfManyNamesMakeAll
// runs Prepares side by side, as a node starting many pods does: eight of
// one key (one wins, the rest are AlreadyExists, one device is made), then
// eight of different keys on one committed parent (all made and listed,
// each mounted device its own), racing a Remove of that parent, which is
// refused while any child exists or is being made. The cleanup compares
// registry, pool metadata and live devices.
func TestConcurrentPreparesOfOneNameMakeOneSnapshotAndOfManyNamesMakeAll(t *testing.T) {
	ctx := t.Context()
	sn := testSnapshotter(t)
	const n = 8

	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = sn.Prepare(ctx, "same", "")
		}()
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case !errdefs.IsAlreadyExists(err):
			t.Errorf("Prepare %d of the same key: %v, want success or AlreadyExists", i, err)
		}
	}
	if won != 1 {
		t.Fatalf("%d of %d concurrent Prepares of one key succeeded, want 1", won, n)
	}
	if got := ourDevices(t, sn); got != 1 {
		t.Fatalf("%d snapshot devices after Prepares of one key, want 1", got)
	}
	if err := sn.Commit(ctx, "parent", "same"); err != nil {
		t.Fatal(err)
	}

	// One at a time first, for the log's comparison.
	t0 := time.Now()
	for i := range n {
		if _, err := sn.Prepare(ctx, fmt.Sprintf("seq-%d", i), "parent"); err != nil {
			t.Fatal(err)
		}
	}
	sequential := time.Since(t0)

	removeErr := make(chan error, 1)
	t0 = time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = sn.Prepare(ctx, fmt.Sprintf("child-%d", i), "parent")
		}()
	}
	go func() { removeErr <- sn.Remove(ctx, "parent") }()
	wg.Wait()
	concurrent := time.Since(t0)
	if err := <-removeErr; !errdefs.IsFailedPrecondition(err) {
		t.Errorf("Remove of the parent while %d children were made: %v, want FailedPrecondition", n, err)
	}
	devs := map[string]string{}
	for i, err := range errs {
		key := fmt.Sprintf("child-%d", i)
		if err != nil {
			t.Errorf("concurrent Prepare of %s: %v", key, err)
			continue
		}
		m, err := sn.Mounts(ctx, key)
		if err != nil || len(m) != 1 {
			t.Fatalf("Mounts of %s: %v, %v", key, m, err)
		}
		if other, ok := devs[m[0].Source]; ok {
			t.Errorf("%s and %s mount the same device %s", key, other, m[0].Source)
		}
		devs[m[0].Source] = key
		if info, err := sn.Stat(ctx, key); err != nil || info.Parent != "parent" || info.Kind != snapshots.KindActive {
			t.Errorf("Stat of %s: %+v, %v", key, info, err)
		}
	}
	if got := ourDevices(t, sn); got != 1+2*n {
		t.Errorf("%d snapshot devices, want %d (the parent, %d one at a time, %d side by side)", got, 1+2*n, n, n)
	}
	t.Logf("%d Prepares on one parent: one at a time %v, side by side %v (%.2fx)", n, sequential.Round(time.Millisecond),
		concurrent.Round(time.Millisecond), float64(sequential)/float64(concurrent))
}

// ourDevices counts the snapshots Walk lists and checks that the pool's
// registry holds as many snapshot devices (the root device aside).
func ourDevices(t *testing.T, sn *Snapshotter) int {
	t.Helper()
	walked := 0
	if err := sn.Walk(t.Context(), func(_ context.Context, _ snapshots.Info) error { walked++; return nil }); err != nil {
		t.Fatal(err)
	}
	labels, err := sn.Pool().DeviceLabels()
	if err != nil {
		t.Fatal(err)
	}
	inPool := 0
	for id := range labels {
		if id != rootID {
			inPool++
		}
	}
	if inPool != walked {
		t.Fatalf("Walk lists %d snapshots, the pool's registry holds %d snapshot devices", walked, inPool)
	}
	return walked
}

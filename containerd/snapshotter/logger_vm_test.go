//go:build vm

package snapshotter

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/snapshots"

	"github.com/thinctl/thinctl/internal/testenv"
)

// TestTheConfigsLoggerIsToldHowARemovedSnapshotsSpaceIsReclaimed gives
// the snapshotter a debug logger, removes a snapshot that was written to,
// and reads the pool's reclaim decision for its device back from the log.
func TestTheConfigsLoggerIsToldHowARemovedSnapshotsSpaceIsReclaimed(t *testing.T) {
	ctx := t.Context()
	var out testenv.LockedBuffer
	log := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	sn, cleanup, err := newSuiteSnapshotterWith(ctx, Config{Root: t.TempDir(), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cleanup(); err != nil {
			t.Error(err)
		}
	})
	if _, err := sn.Prepare(ctx, "a", "", snapshots.WithLabels(map[string]string{"k": "v"})); err != nil {
		t.Fatal(err)
	}
	if err := sn.Remove(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "msg=\"space reclaim\"") {
		if time.Now().After(deadline) {
			t.Fatalf("no reclaim decision logged within 30 s of Remove; the log:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(out.String(), "level=DEBUG") || !strings.Contains(out.String(), "way=") {
		t.Errorf("the reclaim line has no level or way:\n%s", out.String())
	}
}

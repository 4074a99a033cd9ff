//go:build vm

package snapshotter

import (
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/errdefs"

	"github.com/thinctl/thinctl/internal/testenv"
)

func TestLabelsContainerdAcceptsAreAcceptedAndTheRestRefusedAsContainerdDoes(t *testing.T) {
	testenv.RequireDeviceMapper(t)
	testenv.RequireTool(t, "mkfs.ext4")
	ctx := t.Context()
	sn, cleanup, err := newSuiteSnapshotter(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := cleanup(); err != nil {
			t.Error(err)
		}
	}()
	// containerd's limit is on key and value together: a 4000-byte key
	// with a 96-byte value is a valid label (thinpool once refused keys
	// over 1024 bytes).
	longKey := strings.Repeat("k", 4000)
	ok := map[string]string{longKey: strings.Repeat("v", 96), "short": strings.Repeat("v", 4091)}
	if _, err := sn.Prepare(ctx, "a", "", snapshots.WithLabels(ok)); err != nil {
		t.Fatalf("Prepare with labels containerd accepts: %v", err)
	}
	info, err := sn.Stat(ctx, "a")
	if err != nil || info.Labels[longKey] != ok[longKey] || info.Labels["short"] != ok["short"] {
		t.Fatalf("Stat after Prepare: %d labels, %v", len(info.Labels), err)
	}
	tooBig := map[string]string{longKey: strings.Repeat("v", 97)}
	if _, err := sn.Prepare(ctx, "b", "", snapshots.WithLabels(tooBig)); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Prepare with a 4097-byte label = %v, want ErrInvalidArgument", err)
	}
	if _, err := sn.Stat(ctx, "b"); !errdefs.IsNotFound(err) {
		t.Errorf("the refused snapshot exists: %v", err)
	}
	info.Labels = tooBig
	if _, err := sn.Update(ctx, info, "labels."+longKey); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Update to a 4097-byte label = %v, want ErrInvalidArgument", err)
	}
	if err := sn.Commit(ctx, "c", "a", snapshots.WithLabels(tooBig)); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Commit with a 4097-byte label = %v, want ErrInvalidArgument", err)
	}
	if info, err := sn.Stat(ctx, "a"); err != nil || info.Labels[longKey] != ok[longKey] || info.Kind != snapshots.KindActive {
		t.Errorf("after the refusals a is %+v, %v; want it active with its labels", info.Kind, err)
	}
}

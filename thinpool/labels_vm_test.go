//go:build vm

package thinpool

import (
	"context"
	"reflect"
	"testing"
)

func TestLabelsSurviveReopenAndChangeInOneWrite(t *testing.T) {
	ctx := context.Background()
	p, root := newVMPool(t, smallOptions())
	want := map[string]string{"name": "default/1/layer", "kind": "active"}
	must(t, p.Create(ctx, "snap", "", CreateOptions{Labels: want}))
	must(t, p.Create(ctx, "plain", "", CreateOptions{}))
	if d, err := p.Device("snap"); err != nil || !reflect.DeepEqual(d.Labels, want) {
		t.Fatalf("Device after Create: labels %v (%v), want %v", d.Labels, err, want)
	}
	committed := map[string]string{"name": "default/2/layer", "kind": "committed"}
	must(t, p.SetLabels(ctx, "snap", committed))
	must(t, p.Close())

	q, err := Open(ctx, root, OpenOptions{})
	must(t, err)
	defer q.Close()
	all, err := q.DeviceLabels()
	must(t, err)
	if !reflect.DeepEqual(all["snap"], committed) || all["plain"] != nil || len(all) != 2 {
		t.Fatalf("DeviceLabels after reopen = %v, want snap=%v and plain without labels", all, committed)
	}
	t.Run("a removed device's labels are gone", func(t *testing.T) {
		must(t, q.Remove(ctx, "snap"))
		all, err := q.DeviceLabels()
		must(t, err)
		if _, ok := all["snap"]; ok {
			t.Fatalf("DeviceLabels still lists the removed device: %v", all)
		}
		if err := q.SetLabels(ctx, "snap", committed); !isErr(err, ErrDeviceNotFound) {
			t.Fatalf("SetLabels of a removed device = %v, want ErrDeviceNotFound", err)
		}
	})
	t.Run("a bad label leaves the device as it was", func(t *testing.T) {
		if err := q.SetLabels(ctx, "plain", map[string]string{"": "x"}); !isErr(err, ErrInvalidLabel) {
			t.Fatalf("SetLabels with an empty key = %v", err)
		}
		if err := q.Create(ctx, "bad", "", CreateOptions{Labels: map[string]string{"": "x"}}); !isErr(err, ErrInvalidLabel) {
			t.Fatalf("Create with an empty label key = %v", err)
		}
		if _, err := q.Device("bad"); !isErr(err, ErrDeviceNotFound) {
			t.Fatalf("a refused Create left device \"bad\": %v", err)
		}
	})
}

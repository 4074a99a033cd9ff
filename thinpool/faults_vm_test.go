//go:build vm

package thinpool

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"testing"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/internal/testenv"
)

// writeAtSync writes b at off of the block device at path, synced.
func writeAtSync(path string, off int64, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		return err
	}
	return f.Sync()
}

// followFixes does what each health problem's fix says, as the CLI's
// hints would have an operator do, until the pool is healthy.
func followFixes(t *testing.T, p *Pool, metaSize uint64) []Fix {
	t.Helper()
	ctx := context.Background()
	var done []Fix
	for i := 0; ; i++ {
		h, err := p.Health()
		must(t, err)
		if h.OK() {
			return done
		}
		if i == 4 {
			t.Fatalf("still unhealthy after %v: %+v", done, h.Problems)
		}
		fix := h.Problems[0].Fix
		switch fix {
		case FixGrowMetadata:
			metaSize *= 2
			must(t, p.Grow(ctx, GrowOptions{MetadataSize: metaSize}))
		case FixRepair:
			if _, err := p.Repair(ctx, RepairOptions{}); err != nil {
				t.Fatalf("Repair: %v", err)
			}
		default:
			t.Fatalf("health problem %+v has a fix the test does not follow", h.Problems[0])
		}
		done = append(done, fix)
	}
}

// TestMetadataSpaceExhaustedBySnapshotsIsFixedByWhatHealthNames fills a
// 2 MiB metadata device with snapshots that each break sharing with their
// origin; the pool runs out of metadata space. Health and Check say so
// and name growing the metadata (never the data), creates refuse, and
// after the fixes Health names the origin's bytes read back, registry and
// metadata agree, and creates work again.
func TestMetadataSpaceExhaustedBySnapshotsIsFixedByWhatHealthNames(t *testing.T) {
	testenv.RequireTool(t, "thin_check")
	ctx := context.Background()
	p, _ := newVMPool(t, Options{DataSize: 512 * MiB, MetadataSize: 2 * MiB, BaseSize: 80 * MiB, NoMinFreeSpace: true})
	must(t, p.Create(ctx, "a", "", CreateOptions{}))
	path, err := p.Activate(ctx, "a")
	must(t, err)
	before := make([]byte, 64*MiB)
	_, _ = rand.Read(before)
	must(t, writeAtSync(path, 0, before))
	must(t, p.Deactivate(ctx, "a"))

	chunk := make([]byte, 4096)
	_, _ = rand.Read(chunk)
	made := 0
	var faultErr error
	for i := 0; i < 300 && faultErr == nil; i++ {
		id := "s" + itoa(uint32(i))
		if faultErr = p.Create(ctx, id, "a", CreateOptions{}); faultErr != nil {
			break
		}
		made++
		sp, err := p.Activate(ctx, id)
		if err != nil {
			faultErr = err
			break
		}
		for k := int64(0); k < 8 && faultErr == nil; k++ {
			faultErr = writeAtSync(sp, k*8*int64(MiB), chunk)
		}
		_ = p.Deactivate(ctx, id)
	}
	if faultErr == nil {
		t.Fatalf("%d snapshots written did not exhaust 2 MiB of metadata", made)
	}
	t.Logf("the fault after %d snapshots: %v", made, faultErr)

	h, err := p.Health()
	must(t, err)
	if h.OK() {
		t.Fatal("Health is OK with the metadata space exhausted")
	}
	for _, hp := range h.Problems {
		if hp.Fix == FixGrowData {
			t.Fatalf("health names growing the data for exhausted metadata: %+v", h.Problems)
		}
	}
	r, err := p.Check(ctx, CheckOptions{})
	must(t, err)
	if r.Consistent {
		t.Fatalf("check is consistent with the metadata space exhausted: %+v", r)
	}
	err = p.Create(ctx, "refused", "", CreateOptions{})
	var he *HealthError
	if !errors.As(err, &he) {
		t.Fatalf("create on a pool out of metadata space: %v", err)
	}

	fixes := followFixes(t, p, 2*MiB)
	t.Logf("fixes followed: %v", fixes)
	path, err = p.Activate(ctx, "a")
	must(t, err)
	got := make([]byte, len(before))
	f, err := os.Open(path)
	must(t, err)
	_, err = f.ReadAt(got, 0)
	f.Close()
	must(t, err)
	if !bytes.Equal(got, before) {
		t.Fatal("the origin's bytes differ after the recovery")
	}
	must(t, p.Deactivate(ctx, "a"))
	must(t, p.Create(ctx, "after", "", CreateOptions{}))
	r, err = p.Check(ctx, CheckOptions{})
	must(t, err)
	if !r.Consistent {
		t.Fatalf("check after the recovery: %+v", r)
	}
	assertRegistryIsTheMetadata(t, p)
}

//go:build vm

package thinpool

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"testing"
	"time"

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

// writeSpread writes b n times, step bytes apart, to the device at path
// and syncs once (one metadata commit).
func writeSpread(path string, b []byte, n int64, step int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	for k := int64(0); k < n; k++ {
		if _, err := f.WriteAt(b, k*step); err != nil {
			return err
		}
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
	p, _ := newVMPool(t, Options{DataSize: 512 * MiB, MetadataSize: 2 * MiB, BaseSize: 128 * MiB, NoMinFreeSpace: true})
	start := time.Now()
	must(t, p.Create(ctx, "a", "", CreateOptions{}))
	path, err := p.Activate(ctx, "a")
	must(t, err)
	// 4 KiB in every 64 KiB block of the origin: 2048 mappings, many
	// leaves of its mapping tree, little data.
	const stride, blocks int64 = 64 << 10, 2048
	before := make([]byte, 4096)
	_, _ = rand.Read(before)
	must(t, writeSpread(path, before, blocks, stride))
	must(t, p.Deactivate(ctx, "a"))

	t.Logf("origin written in %v", time.Since(start))
	start = time.Now()
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
		// One write every 8 MiB: every leaf of the shared tree is copied.
		faultErr = writeSpread(sp, chunk, 16, 8*int64(MiB))
		_ = p.Deactivate(ctx, id)
	}
	if faultErr == nil {
		t.Fatalf("%d snapshots written did not exhaust 2 MiB of metadata", made)
	}
	t.Logf("the fault after %d snapshots (%v in): %v", made, time.Since(start), faultErr)

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

	start = time.Now()
	fixes := followFixes(t, p, 2*MiB)
	t.Logf("fixes followed: %v (%v)", fixes, time.Since(start))
	path, err = p.Activate(ctx, "a")
	must(t, err)
	f, err := os.Open(path)
	must(t, err)
	got := make([]byte, len(before))
	for k := int64(0); k < blocks; k++ {
		if _, err := f.ReadAt(got, k*stride); err != nil || !bytes.Equal(got, before) {
			f.Close()
			t.Fatalf("the origin's bytes at %d differ after the recovery (%v)", k*stride, err)
		}
	}
	f.Close()
	must(t, p.Deactivate(ctx, "a"))
	must(t, p.Create(ctx, "after", "", CreateOptions{}))
	r, err = p.Check(ctx, CheckOptions{})
	must(t, err)
	if !r.Consistent {
		t.Fatalf("check after the recovery: %+v", r)
	}
	assertRegistryIsTheMetadata(t, p)
}

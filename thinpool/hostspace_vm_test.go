//go:build vm

package thinpool

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/internal/testenv"
	"github.com/thinctl/thinctl/thinpool/internal/vmtest"
)

// fillFS takes every free byte of the filesystem at dir into one file and
// returns it.
func fillFS(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	must(t, err)
	defer f.Close()
	var sfs unix.Statfs_t
	must(t, unix.Statfs(dir, &sfs))
	n := int64(sfs.Bfree) * sfs.Bsize
	for n > 0 && unix.Fallocate(int(f.Fd()), 0, 0, n) != nil {
		n -= 1 << 20
	}
	// What fallocate could not take (extent blocks) goes by plain writes.
	off, _ := f.Seek(0, 2)
	buf := make([]byte, 4096)
	for {
		if _, err := f.WriteAt(buf, off); err != nil {
			break
		}
		off += 4096
	}
	_ = f.Sync()
	must(t, unix.Statfs(dir, &sfs))
	t.Logf("host filesystem filled: %d blocks free", sfs.Bfree)
	return path
}

// writeSeeded writes n bytes of seeded pseudo-random data at offset off of
// the block device at path (vmtest.WriteSeeded).
func writeSeeded(path string, off, n int64, seed int64) ([32]byte, error) {
	return vmtest.WriteSeeded(path, off, n, seed)
}

// hashDevice hashes n bytes at off of the device at path.
func hashDevice(t *testing.T, path string, off, n int64) [32]byte {
	return vmtest.HashDevice(t, path, off, n)
}

func kernelLogTail(t *testing.T, n int) string {
	out, _ := exec.Command("dmesg").Output()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func TestInitAllocatesTheMetadataFileAndLeavesTheDataFileSparse(t *testing.T) {
	o := smallOptions()
	p, _ := newVMPool(t, o)
	if a := allocated(t, p.metaFilePath()); uint64(a) < o.MetadataSize {
		t.Errorf("metadata file has %d bytes allocated, want all %d", a, o.MetadataSize)
	}
	h, err := p.HostSpace()
	must(t, err)
	if h.MetadataSparse() || h.DataAllocated >= h.DataSize/2 || h.Needed() == 0 {
		t.Errorf("HostSpace after init = %+v: want the metadata allocated and the data file sparse", h)
	}
	must(t, p.Grow(context.Background(), GrowOptions{MetadataSize: o.MetadataSize * 2}))
	if a := allocated(t, p.metaFilePath()); uint64(a) < 2*o.MetadataSize {
		t.Errorf("grown metadata file has %d bytes allocated, want all %d", a, 2*o.MetadataSize)
	}
	must(t, p.Preallocate(context.Background(), PreallocateOptions{Data: true}))
	if h, _ := p.HostSpace(); h.Needed() != 0 {
		t.Errorf("after Preallocate(Data) the pool may still need %d bytes of the host", h.Needed())
	}
}

// The kernel's answer to a full host filesystem under a pool whose
// metadata file is allocated: the writer that needs a new data block gets
// an error, the pool stays rw without needs_check and still commits
// metadata, and what was written before reads back.
func TestAFullHostFilesystemFailsTheWriterButNotAPoolWithAllocatedMetadata(t *testing.T) {
	testenv.RequireDeviceMapper(t)
	host := testenv.SmallExt4(t, 192<<20)
	root := filepath.Join(host, "root")
	q, err := Init(context.Background(), root, Options{DataSize: 512 * MiB, MetadataSize: 8 * MiB, BaseSize: 64 * MiB, NoMinFreeSpace: true})
	must(t, err)
	t.Cleanup(func() { tearDown(t, root) })
	t.Cleanup(func() { q.Close() }) // before tearDown: nothing of the pool may hold the host filesystem
	h, err := q.HostSpace()
	must(t, err)
	if h.MetadataSparse() || h.Short() == 0 {
		t.Fatalf("HostSpace = %+v: want allocated metadata and a promise the host cannot keep", h)
	}
	dev, _ := createActive(t, q, "victim")
	before, err := writeSeeded(dev, 0, 8<<20, 1)
	must(t, err)

	filler := fillFS(t, host)
	_, werr := writeSeeded(dev, 16<<20, 128<<20, 2)
	t.Logf("a write into new blocks on the full host filesystem: %v", werr)
	t.Logf("kernel log:\n%s", kernelLogTail(t, 12))
	if werr == nil {
		t.Fatal("128 MiB of new blocks were written on a full host filesystem")
	}
	st, err := q.Status()
	must(t, err)
	if st.State != "rw" || st.NeedsCheck || st.ReadOnly {
		t.Fatalf("pool after the failed write: state %s, needs_check %v", st.State, st.NeedsCheck)
	}
	// The same with the table pool watch loads (queue_if_no_space): the
	// loop device's error reaches the writer at once all the same.
	q.tuning = TableTuning{LowWaterBlocks: 100, QueueIfNoSpace: true}
	_, err = q.Retune(context.Background())
	must(t, err)
	start := time.Now()
	_, qerr := writeSeeded(dev, 56<<20, 8<<20, 4) // inside the 64 MiB device, blocks never written
	t.Logf("the same write with queue_if_no_space: %v after %v", qerr, time.Since(start))
	if qerr == nil || time.Since(start) > 20*time.Second {
		t.Fatalf("with queue_if_no_space the write on a full host returned %v after %v", qerr, time.Since(start))
	}
	q.tuning = TableTuning{}
	_, err = q.Retune(context.Background())
	must(t, err)
	if st, _ = q.Status(); st.State != "rw" || st.NeedsCheck {
		t.Fatalf("pool after the queued write failed: state %s, needs_check %v", st.State, st.NeedsCheck)
	}
	// A metadata commit (a new thin device) on the full host filesystem.
	must(t, q.Create(context.Background(), "after", "", CreateOptions{}))
	if st, _ = q.Status(); st.State != "rw" || st.NeedsCheck {
		t.Fatalf("pool after a metadata commit on the full host: state %s, needs_check %v", st.State, st.NeedsCheck)
	}
	if got := hashDevice(t, dev, 0, 8<<20); got != before {
		t.Fatal("what was written before the host filesystem filled reads back changed")
	}
	must(t, os.Remove(filler))
	if _, err := writeSeeded(dev, 16<<20, 16<<20, 3); err != nil {
		t.Fatalf("a write after the host filesystem has room again: %v", err)
	}
}

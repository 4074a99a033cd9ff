//go:build vm

package thinpool

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/internal/testenv"
)

// smallHostFS makes an ext4 filesystem of size bytes on a loop-mounted
// image and returns its mount point; it is unmounted when the test ends
// (after the cleanups registered later, the pool's among them).
func smallHostFS(t *testing.T, size int64) string {
	t.Helper()
	testenv.RequireTool(t, "mkfs.ext4")
	dir := t.TempDir()
	img, mnt := filepath.Join(dir, "host.img"), filepath.Join(dir, "mnt")
	must(t, os.Mkdir(mnt, 0o755))
	must(t, os.WriteFile(img, nil, 0o600))
	must(t, os.Truncate(img, size))
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-E", "nodiscard", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	if out, err := exec.Command("mount", "-o", "loop", img, mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-d", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	return mnt
}

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
// the block device at path with O_DIRECT, 1 MiB at a time, and returns the
// data's hash and the first error.
func writeSeeded(path string, off, n int64, seed int64) ([32]byte, error) {
	h := sha256.New()
	f, err := os.OpenFile(path, os.O_WRONLY|unix.O_DIRECT, 0)
	if err != nil {
		return [32]byte{}, err
	}
	defer f.Close()
	buf, err := unix.Mmap(-1, 0, 1<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return [32]byte{}, err
	}
	defer unix.Munmap(buf)
	r := rand.New(rand.NewSource(seed))
	for done := int64(0); done < n; done += 1 << 20 {
		r.Read(buf)
		if _, err := f.WriteAt(buf, off+done); err != nil {
			return [32]byte{}, err
		}
		h.Write(buf)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum, f.Sync()
}

// hashDevice hashes n bytes at off of the device at path.
func hashDevice(t *testing.T, path string, off, n int64) [32]byte {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_DIRECT, 0)
	must(t, err)
	defer f.Close()
	buf, err := unix.Mmap(-1, 0, 1<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	must(t, err)
	defer unix.Munmap(buf)
	h := sha256.New()
	for done := int64(0); done < n; done += 1 << 20 {
		_, err := f.ReadAt(buf, off+done)
		must(t, err)
		h.Write(buf)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum
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
	host := smallHostFS(t, 192<<20)
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
	q.tuning = tableTuning{lowWater: 100, queue: true}
	_, err = q.retune(context.Background())
	must(t, err)
	start := time.Now()
	_, qerr := writeSeeded(dev, 56<<20, 8<<20, 4) // inside the 64 MiB device, blocks never written
	t.Logf("the same write with queue_if_no_space: %v after %v", qerr, time.Since(start))
	if qerr == nil || time.Since(start) > 20*time.Second {
		t.Fatalf("with queue_if_no_space the write on a full host returned %v after %v", qerr, time.Since(start))
	}
	q.tuning = tableTuning{}
	_, err = q.retune(context.Background())
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

// startWatch runs Watch on its own Pool value (as the watch command in
// another process would) and returns a stop function that waits for it
// and returns its events, and a function that waits (up to 30 s) for an
// event whose kind and message match.
func startWatch(t *testing.T, root string, o WatchOptions) (stop func() []WatchEvent, waitFor func(kind, text string)) {
	t.Helper()
	w, err := Open(context.Background(), root, OpenOptions{})
	must(t, err)
	var mu sync.Mutex
	var events []WatchEvent
	o.OnEvent = func(e WatchEvent) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
		t.Logf("watch: %s: %s %v", e.Kind, e.Message, e.Err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Watch(ctx, o) }()
	waitFor = func(kind, text string) {
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			mu.Lock()
			for _, e := range events {
				if e.Kind == kind && strings.Contains(e.Message, text) {
					mu.Unlock()
					return
				}
			}
			mu.Unlock()
		}
		t.Errorf("no %s event saying %q from pool watch", kind, text)
	}
	return func() []WatchEvent {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Watch: %v", err)
		}
		w.Close()
		mu.Lock()
		defer mu.Unlock()
		return events
	}, waitFor
}

func fileSize(t *testing.T, path string) uint64 {
	t.Helper()
	st, err := os.Stat(path)
	must(t, err)
	return uint64(st.Size())
}

func TestAWriterOfMoreThanThePoolsDataSizeGetsNoErrorWhilePoolWatchRuns(t *testing.T) {
	const poolSize, devSize, maxSize = 24 * MiB, 16 * MiB, 128 * MiB
	p, root := newVMPool(t, Options{DataSize: poolSize, MetadataSize: 8 * MiB, BaseSize: devSize})
	devA, _ := createActive(t, p, "a")
	devB, _ := createActive(t, p, "b")
	metrics := filepath.Join(t.TempDir(), "thinctl.prom")
	stop, waitFor := startWatch(t, root, WatchOptions{
		Policy:   WatchPolicy{Threshold: 60, Step: 50, MaxDataSize: maxSize, HostReserve: 64 * MiB},
		Interval: 200 * time.Millisecond, MetricsFile: metrics,
	})
	// 384 blocks of 64 KiB: the kernel is to raise an event with 40% of
	// them (154) left, and writes on a full pool are to queue.
	waitFor("tune", "low water mark 154 blocks")
	if table := mustDmsetup(t, "table", p.cfg.PoolName); strings.Fields(table)[6] != "154" || strings.Contains(table, "error_if_no_space") {
		t.Fatalf("pool table while watching: %s", table)
	}
	start := time.Now()
	sumA, errA := writeSeeded(devA, 0, int64(devSize), 10)
	sumB, errB := writeSeeded(devB, 0, int64(devSize), 11)
	t.Logf("wrote %d MiB into a %d MiB pool in %v", 2*devSize/MiB, poolSize/MiB, time.Since(start))
	events := stop()
	if errA != nil || errB != nil {
		t.Fatalf("writes failed while pool watch ran: %v, %v", errA, errB)
	}
	size := fileSize(t, p.dataFilePath())
	if size <= poolSize || size > maxSize {
		t.Errorf("data file is %d MiB: want grown past %d MiB and at most the %d MiB cap", size/MiB, poolSize/MiB, maxSize/MiB)
	}
	grows := 0
	for _, e := range events {
		if e.Kind == "grow" {
			grows++
		}
	}
	if grows == 0 {
		t.Error("no grow event")
	}
	// The table is as thinctl loads it again.
	table := mustDmsetup(t, "table", p.cfg.PoolName)
	if f := strings.Fields(table); len(f) < 7 || f[6] != "32768" || !strings.Contains(table, "error_if_no_space") {
		t.Errorf("pool table after watch stopped: %s", table)
	}
	m, err := os.ReadFile(metrics)
	must(t, err)
	for _, want := range []string{"thinctl_pool_data_size_bytes{pool=", "thinctl_pool_host_free_bytes", "thinctl_pool_watch_grows_total"} {
		if !bytes.Contains(m, []byte(want)) {
			t.Errorf("metrics file lacks %s:\n%s", want, m)
		}
	}
	if hashDevice(t, devA, 0, int64(devSize)) != sumA || hashDevice(t, devB, 0, int64(devSize)) != sumB {
		t.Error("the written data reads back changed")
	}
	q, err := Open(context.Background(), root, OpenOptions{})
	must(t, err)
	defer q.Close()
	if st, _ := q.Status(); st.DataTotal != size || st.State != "rw" {
		t.Errorf("pool after the watch: %s, %d MiB of data; data file %d MiB", st.State, st.DataTotal/MiB, size/MiB)
	}
}

func TestPoolWatchStopsAtItsCapAndAtTheHostReserve(t *testing.T) {
	const poolSize, devSize, maxSize = 24 * MiB, 16 * MiB, 28 * MiB
	p, root := newVMPool(t, Options{DataSize: poolSize, MetadataSize: 8 * MiB, BaseSize: devSize, NoMinFreeSpace: true})
	devA, _ := createActive(t, p, "a")
	devB, _ := createActive(t, p, "b")
	stop, _ := startWatch(t, root, WatchOptions{
		Policy:   WatchPolicy{Threshold: 60, Step: 50, MaxDataSize: maxSize},
		Interval: 200 * time.Millisecond,
	})
	sumA, errA := writeSeeded(devA, 0, int64(devSize), 20)
	_, errB := writeSeeded(devB, 0, int64(devSize), 21)
	events := stop()
	if errA != nil {
		t.Fatalf("a write within the cap failed: %v", errA)
	}
	if errB == nil {
		t.Fatalf("%d MiB were written into a pool capped at %d MiB", 2*devSize/MiB, maxSize/MiB)
	}
	t.Logf("the write past the cap: %v", errB)
	if size := fileSize(t, p.dataFilePath()); size != maxSize {
		t.Errorf("data file is %d MiB, want the cap %d MiB", size/MiB, maxSize/MiB)
	}
	held := false
	for _, e := range events {
		held = held || e.Kind == "held" && strings.Contains(e.Message, "capped")
	}
	if !held {
		t.Error("no held event names the cap")
	}
	if hashDevice(t, devA, 0, int64(devSize)) != sumA {
		t.Error("the data written within the cap reads back changed")
	}

	// The host reserve: leave the pool 8 MiB of growth on its host.
	h, err := p.HostSpace()
	must(t, err)
	size := fileSize(t, p.dataFilePath())
	stop, waitFor := startWatch(t, root, WatchOptions{
		Policy:   WatchPolicy{Threshold: 60, Step: 50, HostReserve: h.Free - h.Needed() - 8*MiB},
		Interval: 200 * time.Millisecond,
	})
	waitFor("held", "reserve")
	events = stop()
	if grown := fileSize(t, p.dataFilePath()) - size; grown == 0 || grown > 8*MiB {
		t.Errorf("data file grew %d KiB with an 8 MiB budget above the host reserve", grown/KiB)
	}
	held = false
	for _, e := range events {
		held = held || e.Kind == "held" && strings.Contains(e.Message, "reserve")
	}
	if !held {
		t.Error("no held event names the host reserve")
	}
}

func TestPoolWatchRunsTheThinCommandForAnExternalPoolWithDmeventdsVariables(t *testing.T) {
	testenv.RequireDeviceMapper(t)
	_, meta, dataDev, metaDev := rawDevices(t)
	name := fmt.Sprintf("ext-watch-%d", len(t.Name()))
	table := fmt.Sprintf("0 %d thin-pool %s %s 128 32768 1 skip_block_zeroing", GiB/512, metaDev, dataDev)
	mustDmsetup(t, "create", name, "--table", table)
	t.Cleanup(func() {
		dmsetup(t, "remove", name)
		thinCheck(t, meta)
	})
	root := t.TempDir()
	p, err := Init(context.Background(), root, Options{ThinPoolDevice: name, BaseSize: 64 * MiB})
	must(t, err)
	defer p.Close()
	table = strings.TrimSpace(mustDmsetup(t, "table", name)) // as the kernel shows it

	out := filepath.Join(t.TempDir(), "ran")
	stop, waitFor := startWatch(t, root, WatchOptions{
		Policy:      WatchPolicy{Threshold: 0.01}, // anything used
		Interval:    200 * time.Millisecond,
		ThinCommand: []string{"/bin/sh", "-c", `echo "$1 $DMEVENTD_THIN_POOL_DATA $DMEVENTD_THIN_POOL_METADATA" >>` + out, "sh"},
	})
	waitFor("command", "ran /bin/sh")
	events := stop()
	b, err := os.ReadFile(out)
	must(t, err)
	st, err := p.Status()
	must(t, err)
	f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0])
	if len(f) != 3 || f[0] != name || f[1] != fmt.Sprint(int(st.DataUsedPercent)) || f[2] != fmt.Sprint(int(st.MetadataUsedPercent)) {
		t.Fatalf("the thin command saw %q; want %q and the pool's %d%% data, %d%% metadata", b, name, int(st.DataUsedPercent), int(st.MetadataUsedPercent))
	}
	for _, e := range events {
		if e.Kind == "grow" || e.Kind == "tune" || e.Kind == "error" {
			t.Errorf("watch changed an external pool: %s %s", e.Kind, e.Message)
		}
	}
	if got := strings.TrimSpace(mustDmsetup(t, "table", name)); got != table {
		t.Errorf("the external pool's table changed:\n got %s\nwant %s", got, table)
	}
	must(t, p.Destroy(context.Background(), true))
}

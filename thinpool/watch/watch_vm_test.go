//go:build vm

package watch

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thinctl/thinctl/internal/testenv"
	"github.com/thinctl/thinctl/thinpool"
	"github.com/thinctl/thinctl/thinpool/internal/vmtest"
)

// newVMPool initializes a pool in a fresh root and, when the test ends,
// takes it down from a fresh Pool value and runs thin_check on its
// metadata.
func newVMPool(t *testing.T, o thinpool.Options) (*thinpool.Pool, string) {
	t.Helper()
	testenv.RequireDeviceMapper(t)
	testenv.RequireTool(t, "mkfs.ext4")
	root := t.TempDir()
	p, err := thinpool.Init(context.Background(), root, o)
	if err != nil {
		t.Fatalf("Init: %v", err)
	}
	t.Cleanup(func() {
		if !thinpool.Exists(root) {
			return // destroyed by the test
		}
		q, err := thinpool.Open(context.Background(), root, thinpool.OpenOptions{})
		if err != nil {
			t.Errorf("teardown Open: %v", err)
			return
		}
		defer q.Close()
		st, err := q.Status()
		vmtest.Must(t, err)
		if err := q.Down(context.Background()); err != nil {
			t.Errorf("teardown Down: %v", err)
			return
		}
		if st.MetadataFile != "" {
			vmtest.ThinCheck(t, st.MetadataFile)
		}
	})
	return p, root
}

// createActive creates device id (without a parent) in p and activates it;
// it returns the device's path and its device-mapper name.
func createActive(t *testing.T, p *thinpool.Pool, id string) (path, name string) {
	t.Helper()
	vmtest.Must(t, p.Create(context.Background(), id, "", thinpool.CreateOptions{}))
	path, err := p.Activate(context.Background(), id)
	vmtest.Must(t, err)
	return path, filepath.Base(path)
}

// poolName is the pool's device-mapper name.
func poolName(t *testing.T, p *thinpool.Pool) string {
	st, err := p.Status()
	vmtest.Must(t, err)
	return st.PoolName
}

// dataFile is the pool's data file.
func dataFile(t *testing.T, p *thinpool.Pool) string {
	st, err := p.Status()
	vmtest.Must(t, err)
	return st.DataFile
}

// startWatch runs Run on its own Pool value (as the watch command in
// another process would) and returns a stop function that waits for it
// and returns its events, and a function that waits (up to 30 s) for an
// event whose kind and message match.
func startWatch(t *testing.T, root string, o Options) (stop func() []Event, waitFor func(kind, text string)) {
	t.Helper()
	w, err := thinpool.Open(context.Background(), root, thinpool.OpenOptions{})
	vmtest.Must(t, err)
	var mu sync.Mutex
	var events []Event
	o.OnEvent = func(e Event) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
		t.Logf("watch: %s: %s %v", e.Kind, e.Message, e.Err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, w, o) }()
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
	return func() []Event {
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
	vmtest.Must(t, err)
	return uint64(st.Size())
}

func TestAWriterOfMoreThanThePoolsDataSizeGetsNoErrorWhilePoolWatchRuns(t *testing.T) {
	const poolSize, devSize, maxSize = 24 * thinpool.MiB, 16 * thinpool.MiB, 128 * thinpool.MiB
	p, root := newVMPool(t, thinpool.Options{DataSize: poolSize, MetadataSize: 8 * thinpool.MiB, BaseSize: devSize})
	devA, _ := createActive(t, p, "a")
	devB, _ := createActive(t, p, "b")
	metrics := filepath.Join(t.TempDir(), "thinctl.prom")
	stop, waitFor := startWatch(t, root, Options{
		Policy:   Policy{Threshold: 60, Step: 50, MaxDataSize: maxSize, HostReserve: 64 * thinpool.MiB},
		Interval: 200 * time.Millisecond, MetricsFile: metrics,
	})
	// 384 blocks of 64 KiB: the kernel is to raise an event with 40% of
	// them (154) left, and writes on a full pool are to queue.
	waitFor("tune", "low water mark 154 blocks")
	if table := vmtest.MustDmsetup(t, "table", poolName(t, p)); strings.Fields(table)[6] != "154" || strings.Contains(table, "error_if_no_space") {
		t.Fatalf("pool table while watching: %s", table)
	}
	start := time.Now()
	sumA, errA := vmtest.WriteSeeded(devA, 0, int64(devSize), 10)
	sumB, errB := vmtest.WriteSeeded(devB, 0, int64(devSize), 11)
	t.Logf("wrote %d MiB into a %d MiB pool in %v", 2*devSize/thinpool.MiB, poolSize/thinpool.MiB, time.Since(start))
	events := stop()
	if errA != nil || errB != nil {
		t.Fatalf("writes failed while pool watch ran: %v, %v", errA, errB)
	}
	size := fileSize(t, dataFile(t, p))
	if size <= poolSize || size > maxSize {
		t.Errorf("data file is %d MiB: want grown past %d MiB and at most the %d MiB cap", size/thinpool.MiB, poolSize/thinpool.MiB, maxSize/thinpool.MiB)
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
	table := vmtest.MustDmsetup(t, "table", poolName(t, p))
	if f := strings.Fields(table); len(f) < 7 || f[6] != "32768" || !strings.Contains(table, "error_if_no_space") {
		t.Errorf("pool table after watch stopped: %s", table)
	}
	m, err := os.ReadFile(metrics)
	vmtest.Must(t, err)
	for _, want := range []string{"thinctl_pool_data_size_bytes{pool=", "thinctl_pool_host_free_bytes", "thinctl_pool_watch_grows_total"} {
		if !bytes.Contains(m, []byte(want)) {
			t.Errorf("metrics file lacks %s:\n%s", want, m)
		}
	}
	if vmtest.HashDevice(t, devA, 0, int64(devSize)) != sumA || vmtest.HashDevice(t, devB, 0, int64(devSize)) != sumB {
		t.Error("the written data reads back changed")
	}
	q, err := thinpool.Open(context.Background(), root, thinpool.OpenOptions{})
	vmtest.Must(t, err)
	defer q.Close()
	if st, _ := q.Status(); st.DataTotal != size || st.State != "rw" {
		t.Errorf("pool after the watch: %s, %d MiB of data; data file %d MiB", st.State, st.DataTotal/thinpool.MiB, size/thinpool.MiB)
	}
}

func TestPoolWatchStopsAtItsCapAndAtTheHostReserve(t *testing.T) {
	const poolSize, devSize, maxSize = 24 * thinpool.MiB, 16 * thinpool.MiB, 28 * thinpool.MiB
	p, root := newVMPool(t, thinpool.Options{DataSize: poolSize, MetadataSize: 8 * thinpool.MiB, BaseSize: devSize, NoMinFreeSpace: true})
	devA, _ := createActive(t, p, "a")
	devB, _ := createActive(t, p, "b")
	stop, _ := startWatch(t, root, Options{
		Policy:   Policy{Threshold: 60, Step: 50, MaxDataSize: maxSize},
		Interval: 200 * time.Millisecond,
	})
	sumA, errA := vmtest.WriteSeeded(devA, 0, int64(devSize), 20)
	_, errB := vmtest.WriteSeeded(devB, 0, int64(devSize), 21)
	events := stop()
	if errA != nil {
		t.Fatalf("a write within the cap failed: %v", errA)
	}
	if errB == nil {
		t.Fatalf("%d MiB were written into a pool capped at %d MiB", 2*devSize/thinpool.MiB, maxSize/thinpool.MiB)
	}
	t.Logf("the write past the cap: %v", errB)
	if size := fileSize(t, dataFile(t, p)); size != maxSize {
		t.Errorf("data file is %d MiB, want the cap %d MiB", size/thinpool.MiB, maxSize/thinpool.MiB)
	}
	held := false
	for _, e := range events {
		held = held || e.Kind == "held" && strings.Contains(e.Message, "capped")
	}
	if !held {
		t.Error("no held event names the cap")
	}
	if vmtest.HashDevice(t, devA, 0, int64(devSize)) != sumA {
		t.Error("the data written within the cap reads back changed")
	}

	// The host reserve: leave the pool 8 MiB of growth on its host.
	h, err := p.HostSpace()
	vmtest.Must(t, err)
	size := fileSize(t, dataFile(t, p))
	stop, waitFor := startWatch(t, root, Options{
		Policy:   Policy{Threshold: 60, Step: 50, HostReserve: h.Free - h.Needed() - 8*thinpool.MiB},
		Interval: 200 * time.Millisecond,
	})
	waitFor("held", "reserve")
	events = stop()
	if grown := fileSize(t, dataFile(t, p)) - size; grown == 0 || grown > 8*thinpool.MiB {
		t.Errorf("data file grew %d KiB with an 8 MiB budget above the host reserve", grown/thinpool.KiB)
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
	_, meta, dataDev, metaDev := vmtest.RawDevices(t)
	name := fmt.Sprintf("ext-watch-%d", len(t.Name()))
	table := fmt.Sprintf("0 %d thin-pool %s %s 128 32768 1 skip_block_zeroing", thinpool.GiB/512, metaDev, dataDev)
	vmtest.MustDmsetup(t, "create", name, "--table", table)
	t.Cleanup(func() {
		vmtest.Dmsetup(t, "remove", name)
		vmtest.ThinCheck(t, meta)
	})
	root := t.TempDir()
	p, err := thinpool.Init(context.Background(), root, thinpool.Options{ThinPoolDevice: name, BaseSize: 64 * thinpool.MiB})
	vmtest.Must(t, err)
	defer p.Close()
	table = strings.TrimSpace(vmtest.MustDmsetup(t, "table", name)) // as the kernel shows it

	out := filepath.Join(t.TempDir(), "ran")
	stop, waitFor := startWatch(t, root, Options{
		Policy:      Policy{Threshold: 0.01}, // anything used
		Interval:    200 * time.Millisecond,
		ThinCommand: []string{"/bin/sh", "-c", `echo "$1 $DMEVENTD_THIN_POOL_DATA $DMEVENTD_THIN_POOL_METADATA" >>` + out, "sh"},
	})
	waitFor("command", "ran /bin/sh")
	events := stop()
	b, err := os.ReadFile(out)
	vmtest.Must(t, err)
	st, err := p.Status()
	vmtest.Must(t, err)
	f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0])
	if len(f) != 3 || f[0] != name || f[1] != fmt.Sprint(int(st.DataUsedPercent)) || f[2] != fmt.Sprint(int(st.MetadataUsedPercent)) {
		t.Fatalf("the thin command saw %q; want %q and the pool's %d%% data, %d%% metadata", b, name, int(st.DataUsedPercent), int(st.MetadataUsedPercent))
	}
	for _, e := range events {
		if e.Kind == "grow" || e.Kind == "tune" || e.Kind == "error" {
			t.Errorf("watch changed an external pool: %s %s", e.Kind, e.Message)
		}
	}
	if got := strings.TrimSpace(vmtest.MustDmsetup(t, "table", name)); got != table {
		t.Errorf("the external pool's table changed:\n got %s\nwant %s", got, table)
	}
	vmtest.Must(t, p.Destroy(context.Background(), true))
}

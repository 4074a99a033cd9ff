//go:build vm

package thinpool

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/thinctl/thinctl/internal/crc32c"
	"github.com/thinctl/thinctl/internal/testenv"
	"github.com/thinctl/thinctl/thinpool/internal/store"
)

// Concurrent creates from goroutines of two Pool values (as two processes
// would be) share the journal's flushes: N creates make fewer than N
// fdatasyncs, while removes run beside them. Afterwards the registry,
// thin_dump of the metadata (an independent reader) and the live devices
// agree.
func TestConcurrentCreatesShareJournalFlushes(t *testing.T) {
	for _, delay := range []time.Duration{0, store.MaxGroupDelay} {
		t.Run(fmt.Sprintf("a leader waits up to %v for arriving creates", delay), func(t *testing.T) {
			saved := store.MaxGroupDelay
			store.MaxGroupDelay = delay
			defer func() { store.MaxGroupDelay = saved }()
			concurrentCreates(t)
		})
	}
}

func concurrentCreates(t *testing.T) {
	p, root := newVMPool(t, Options{DataSize: GiB, MetadataSize: 64 * MiB, BaseSize: 256 * MiB, NoDiscard: true})
	defer p.Close()
	q, err := Open(context.Background(), root, OpenOptions{})
	must(t, err)
	defer q.Close()
	ctx := context.Background()
	must(t, p.Create(ctx, "parent", "", CreateOptions{}))
	for i := range 4 {
		must(t, p.Create(ctx, fmt.Sprintf("old%d", i), "", CreateOptions{}))
	}
	const workers, each = 8, 4
	f0 := store.Flushes()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, workers*each+4)
	for w := range workers {
		pool := p
		if w%2 == 1 {
			pool = q
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				parent := ""
				if i%2 == 1 {
					parent = "parent"
				}
				id := fmt.Sprintf("w%d-%d", w, i)
				if err := pool.Create(ctx, id, parent, CreateOptions{}); err != nil {
					errs <- err
					continue
				}
				if _, err := pool.Activate(ctx, id); err != nil {
					errs <- err
				}
			}
		}()
	}
	for i := range 4 { // removes beside the creates (each a flushed transaction of its own)
		wg.Add(1)
		go func() { defer wg.Done(); errs <- q.Remove(ctx, fmt.Sprintf("old%d", i)) }()
	}
	wg.Wait()
	took := time.Since(start)
	close(errs)
	for err := range errs {
		must(t, err)
	}
	creates := int64(workers * each)
	total := store.Flushes() - f0
	fmt.Printf("FLUSHES group (delay %v): %d journal fdatasyncs for %d concurrent creates+activations and 4 removes in %v\n", store.MaxGroupDelay, total, creates, took.Round(time.Millisecond))
	if total >= creates+4 {
		t.Errorf("%d journal fdatasyncs for %d creates and 4 removes: the creates shared none", total, creates)
	}

	// Registry = live devices = pool metadata.
	devs, err := p.Devices()
	must(t, err)
	var ids []string
	active := 0
	for _, d := range devs {
		ids = append(ids, d.ID)
		if d.Active {
			active++
		}
	}
	if len(devs) != 1+workers*each || active != workers*each {
		t.Fatalf("%d devices, %d active; want %d and %d: %v", len(devs), active, 1+workers*each, workers*each, ids)
	}
	oracle, err := testenv.ReadRegistry(root)
	must(t, err)
	if len(oracle) != len(devs) {
		t.Fatalf("the registry files hold %d records, Devices %d", len(oracle), len(devs))
	}
	must(t, p.Close())
	must(t, q.Close())
	r, err := Open(ctx, root, OpenOptions{})
	must(t, err)
	defer r.Close()
	if tx, err := r.store.LeftTx(); tx != nil || err != nil {
		t.Fatalf("a transaction is left open: %+v, %v", tx, err)
	}
	must(t, r.Down(ctx))
	want := []uint32{r.cfg.BaseDeviceID}
	for _, d := range oracle {
		want = append(want, d.DeviceID)
	}
	got := thinDumpIDs(t, r.metaFilePath())
	sort.Slice(want, func(i, j int) bool { return want[i] < want[j] })
	sort.Slice(got, func(i, j int) bool { return got[i] < got[j] })
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("thin_dump lists %v; the registry (and base) %v", got, want)
	}
}

// A version 2 root (pool.json, registry file and journal at version 2)
// with a create left open opens: the transaction is recovered, and the
// root continues at version 3 (pool.json says so, so an older release
// refuses it rather than misreading several open transactions).
func TestAVersion2RootOpensAndContinuesAsVersion3(t *testing.T) {
	p, root := newVMPool(t, smallOptions())
	ctx := context.Background()
	must(t, p.Create(ctx, "kept", "", CreateOptions{}))
	d := store.Device{Version: store.RecordVersion, ID: "open", DeviceID: 90, Size: p.cfg.BaseSize, Initialized: true}
	must(t, p.store.Begin(store.Tx{Op: store.OpCreateSnap, DeviceID: 90, OriginDeviceID: p.cfg.BaseDeviceID, ID: "open", Device: &d}))
	cfg := p.cfg
	p.Close()
	dir := filepath.Join(root, stateDirName)
	for _, name := range []string{"journal", "registry"} { // their headers: docs/registry.md
		path := filepath.Join(dir, name)
		b, err := os.ReadFile(path)
		must(t, err)
		binary.LittleEndian.PutUint32(b[8:], 2)
		if name == "journal" {
			binary.LittleEndian.PutUint32(b[24:], crc32c.Update(0, b[:24]))
		} else {
			binary.LittleEndian.PutUint32(b[40:], crc32c.Update(crc32c.Update(0, b[:40]), b[48:]))
		}
		must(t, os.WriteFile(path, b, 0o600))
	}
	cfg.Version = store.V2
	b, err := json.MarshalIndent(cfg, "", "  ")
	must(t, err)
	must(t, os.WriteFile(filepath.Join(dir, store.PoolFileName), b, 0o600))

	q, err := Open(ctx, root, OpenOptions{})
	must(t, err)
	defer q.Close()
	if tx, err := q.store.LeftTx(); tx != nil || err != nil {
		t.Fatalf("the version 2 transaction survives Open: %+v, %v", tx, err)
	}
	if _, err := q.Device("open"); err == nil {
		t.Fatal("a create whose message never reached the pool was kept")
	}
	if _, err := q.Device("kept"); err != nil {
		t.Fatalf("the version 2 record was lost: %v", err)
	}
	got, err := q.store.LoadConfig()
	must(t, err)
	if got.Version != store.Version {
		t.Fatalf("pool.json says version %d after Open, want %d", got.Version, store.Version)
	}
	must(t, q.Create(ctx, "after", "kept", CreateOptions{}))
	if _, err := q.Activate(ctx, "after"); err != nil {
		t.Fatal(err)
	}
}

package store

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// BenchmarkRegistryCreate is the registry's part of one create: begin
// (flushed), the record and end (not flushed), with the root lock file's
// counter as in a real Pool.
func BenchmarkRegistryCreate(b *testing.B) {
	r, lk := benchRegistry(b, 0)
	b.ResetTimer()
	for i := range b.N {
		devID := uint32(i%1000000 + 10)
		d := sampleDevice(fmt.Sprintf("dev-%d", i), devID)
		mustB(b, lk.Lock())
		mustB(b, r.Begin(Tx{Op: OpCreateSnap, DeviceID: devID, OriginDeviceID: 1, ID: d.ID, Device: &d}))
		mustB(b, r.Put(d))
		mustB(b, r.End())
		lk.Unlock()
	}
}

// BenchmarkRegistryOpen10000 reads a registry of 10,000 records from disk
// (the registry file, as after a compaction).
func BenchmarkRegistryOpen10000(b *testing.B) {
	r, _ := benchRegistry(b, 10000)
	mustB(b, r.Compact())
	b.ResetTimer()
	var keep *Store
	for range b.N {
		rr := New(r.dir, nil)
		if _, err := rr.List(); err != nil {
			b.Fatal(err)
		}
		rr.Close()
		keep = rr
	}
	b.StopTimer()
	// What the loaded registry keeps (its index) after a collection.
	keep = New(r.dir, nil)
	var m0, m1 runtime.MemStats
	r.Close()
	runtime.GC()
	runtime.ReadMemStats(&m0)
	if err := keep.Refresh(); err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&m1)
	b.ReportMetric(float64(m1.HeapAlloc-min(m0.HeapAlloc, m1.HeapAlloc))/(1<<20), "heap-MiB")
	runtime.KeepAlive(keep)
	keep.Close()
}

func benchRegistry(b *testing.B, n int) (*Store, *Lock) {
	b.Helper()
	dir := filepath.Join(b.TempDir(), "devicemapper")
	mustB(b, mkdirAll(dir))
	lk, err := OpenLock(filepath.Join(dir, LockFileName))
	mustB(b, err)
	b.Cleanup(func() { lk.Close() })
	r := New(dir, lk)
	mustB(b, r.Create())
	b.Cleanup(r.Close)
	mustB(b, lk.Lock())
	for i := range n {
		d := sampleDevice(fmt.Sprintf("fill-%05d", i), uint32(100+i))
		d.Labels = map[string]string{"containerd.io/snapshot/name": fmt.Sprintf("default/%d/sha256:%064d", i, i)}
		r.inTx = true // no flush per record while filling
		mustB(b, r.Put(d))
		r.inTx, r.txBuf = false, nil
	}
	lk.Unlock()
	return r, lk
}

func mustB(b *testing.B, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
}

func mkdirAll(dir string) error { return os.MkdirAll(dir, 0o700) }

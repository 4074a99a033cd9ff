//go:build vm

package reliability

import (
	"crypto/rand"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// poolStatus is the part of `thinctl -o json pool status` the tests read.
type poolStatus struct {
	State     string `json:"state"`
	DataUsed  uint64 `json:"data_used_bytes"`
	DataTotal uint64 `json:"data_total_bytes"`
}

// directWriter writes 1 MiB chunks of random data to a block device with
// O_DIRECT, so every write reaches the pool at once and its error comes
// back from that write.
type directWriter struct {
	f   *os.File
	buf []byte
	off int64
}

func openDirect(t *testing.T, path string) *directWriter {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|unix.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	buf, err := unix.Mmap(-1, 0, 1<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	rand.Read(buf)
	t.Cleanup(func() { f.Close(); unix.Munmap(buf) })
	return &directWriter{f: f, buf: buf}
}

// write writes n MiB (or until an error) and returns the first error and
// the slowest single write.
func (w *directWriter) write(n int) (error, time.Duration) {
	var slowest time.Duration
	for i := 0; i < n; i++ {
		start := time.Now()
		_, err := w.f.WriteAt(w.buf, w.off)
		slowest = max(slowest, time.Since(start))
		if err != nil {
			return err, slowest
		}
		w.off += int64(len(w.buf))
	}
	return nil, slowest
}

// TestReliabilityFullPool fills the pool through three thin devices that
// together are larger than it: writes fail fast with EIO/ENOSPC, status
// says out of data space, and after pool grow the writes succeed again.
func TestReliabilityFullPool(t *testing.T) {
	r := newPoolRig(t, "", "pool", "init", "--data-size", "128M", "--metadata-size", "16M", "--base-size", "64M")
	var devs []*directWriter
	for _, id := range []string{"f1", "f2", "f3"} {
		r.must("create", id)
		devs = append(devs, openDirect(t, strings.TrimSpace(r.must("activate", id))))
	}
	const limit = 20 * time.Second // "within seconds", with room for emulation
	var werr error
	var failedDev *directWriter
	for _, d := range devs {
		err, slowest := d.write(64)
		if slowest > limit {
			t.Errorf("a single 1 MiB write took %v", slowest)
		}
		if err != nil {
			werr, failedDev = err, d
			break
		}
	}
	if werr == nil {
		t.Fatal("192 MiB went into a 128 MiB pool without an error")
	}
	if !strings.Contains(werr.Error(), "input/output error") && !strings.Contains(werr.Error(), "no space") {
		t.Errorf("a write to a full pool failed with %v, want EIO or ENOSPC", werr)
	}
	t.Logf("the pool filled after %d MiB on one device: %v", failedDev.off>>20, werr)
	var st poolStatus
	r.decode(&st, "pool", "status")
	if st.State != "out_of_data_space" {
		t.Errorf("pool status state %q, want out_of_data_space (%+v)", st.State, st)
	}
	text := r.must("pool", "status")
	if !strings.Contains(text, "out_of_data_space") && !strings.Contains(strings.ToLower(text), "out of data space") {
		t.Errorf("pool status does not say the pool is out of data space:\n%s", text)
	}
	start := time.Now()
	r.must("pool", "grow", "--data-size", "512M")
	t.Logf("pool grow took %v", time.Since(start))
	r.decode(&st, "pool", "status")
	if st.State != "rw" {
		t.Errorf("after pool grow the state is %q, want rw", st.State)
	}
	if err, _ := failedDev.write(8); err != nil {
		t.Errorf("writing after pool grow: %v", err)
	}
	for _, d := range devs {
		d.f.Close()
	}
	for _, id := range []string{"f1", "f2", "f3"} {
		r.must("deactivate", id)
	}
	r.assertConsistent(t)
	r.assertPoolMatchesRegistry(t)
}

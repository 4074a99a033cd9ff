//go:build vm

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	leasesapi "github.com/containerd/containerd/api/services/leases/v1"
	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/thinctl/thinctl/internal/testenv"
	"github.com/thinctl/thinctl/tests/bench/benchwire"
)

// TestBenchVsContainerdDevmapper measures thinctl-snapshotter against
// containerd's built-in devmapper snapshotter in one containerd (Debian's
// 1.6.20), each on its own pool of the same size and block size with
// discards on, through the same gRPC API: Prepare+Mounts per snapshot,
// Remove per snapshot (a lease deleted with sync: containerd's garbage
// collection removes the snapshots from the snapshotter and calls its
// Cleanup) and `ctr images import` of a 20-layer image. containerd's
// overlayfs snapshotter takes the same Prepare+Mounts and Remove calls as
// the measure of containerd's own share. It prints BENCH lines (devmapper
// time / thinctl time) and a BENCHCTRD line with the details. It runs
// only when named with -test.run (a measurement, minutes long); make bench
// runs it in its guest (tests/bench/run.sh).
func TestBenchVsContainerdDevmapper(t *testing.T) {
	if f := flag.Lookup("test.run"); f == nil || !strings.Contains(f.Value.String(), "VsContainerdDevmapper") {
		t.Skip("a measurement: run it by name (--run TestBenchVsContainerdDevmapper)")
	}
	testenv.RequireDeviceMapper(t)
	containerd := testenv.RequireTool(t, "containerd")
	testenv.RequireTool(t, "ctr")
	testenv.RequireTool(t, "dmsetup")
	testenv.RequireTool(t, "losetup")
	testenv.RequireTool(t, "blkdiscard")

	res := benchwire.Ctrd{Udev: os.Getenv("THINCTL_UDEV") == "1", PerRound: 10, Rounds: 4, Layers: 20, LayerKiB: 256,
		PoolMiB: 4096, MetaMiB: 64, BlockKiB: 64, DeviceMiB: 256,
		PrepareMs: map[string][]float64{}, RemoveMs: map[string][]float64{}, ImportMs: map[string]float64{}, ServerMs: map[string][]float64{}}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		res.Kernel = strings.TrimSpace(string(b))
	}
	kw := watchKernelIOErrors(t)
	poolName, _ := devmapperPool(t, int64(res.PoolMiB)<<20, int64(res.MetaMiB)<<20)
	r := newRig(t)
	r.startSnapshotter()
	r.startContainerd(containerd, devmapperConfig(filepath.Join(t.TempDir(), "devmapper"), poolName))

	conn, err := grpc.NewClient("unix://"+r.ctrdSock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := namespaces.WithNamespace(context.Background(), "bench")
	sc, lc := snapshotsapi.NewSnapshotsClient(conn), leasesapi.NewLeasesClient(conn)
	names := []string{"thinctl", "devmapper", "overlayfs"}
	// Every snapshot is made under a lease: containerd's collector (it
	// also runs on its own, e.g. shortly after its start) removes any
	// snapshot that neither a lease nor a gc.root label holds.
	if _, err := lc.Create(ctx, &leasesapi.CreateRequest{ID: "bench-base"}); err != nil {
		t.Fatal(err)
	}
	bctx := leases.WithLease(ctx, "bench-base")
	for _, sn := range names {
		// The committed parent every measured snapshot starts from.
		if _, err := sc.Prepare(bctx, &snapshotsapi.PrepareSnapshotRequest{Snapshotter: sn, Key: "base-active"}); err != nil {
			t.Fatalf("%s: prepare the base: %v", sn, err)
		}
		if _, err := sc.Commit(bctx, &snapshotsapi.CommitSnapshotRequest{Snapshotter: sn, Name: "base", Key: "base-active",
			Labels: map[string]string{"containerd.io/gc.root": "bench"}}); err != nil {
			t.Fatalf("%s: commit the base: %v", sn, err)
		}
	}

	// One unmeasured Prepare+Mounts and Remove each first: the first
	// requests of a snapshotter pay for loading code and caches.
	kw.phase("warm-up")
	for _, sn := range names {
		if _, err := sc.Prepare(bctx, &snapshotsapi.PrepareSnapshotRequest{Snapshotter: sn, Key: "warm-up", Parent: "base"}); err != nil {
			t.Fatalf("%s: warm-up prepare: %v", sn, err)
		}
		if _, err := sc.Mounts(bctx, &snapshotsapi.MountsRequest{Snapshotter: sn, Key: "warm-up"}); err != nil {
			t.Fatalf("%s: warm-up mounts: %v", sn, err)
		}
		if _, err := sc.Remove(bctx, &snapshotsapi.RemoveSnapshotRequest{Snapshotter: sn, Key: "warm-up"}); err != nil {
			t.Fatalf("%s: warm-up remove: %v", sn, err)
		}
	}
	for round := range res.Rounds {
		order := slices.Clone(names)
		for range round {
			order = append(order[1:], order[0]) // rotate the order between rounds
		}
		for _, sn := range order {
			id := fmt.Sprintf("bench-%s-%d", sn, round)
			if _, err := lc.Create(ctx, &leasesapi.CreateRequest{ID: id}); err != nil {
				t.Fatal(err)
			}
			lctx := leases.WithLease(ctx, id)
			kw.phase("prepare+mounts/" + sn)
			logAt := r.snapLogSize()
			for i := range res.PerRound {
				key := fmt.Sprintf("%s-%d", id, i)
				t0 := time.Now()
				if _, err := sc.Prepare(lctx, &snapshotsapi.PrepareSnapshotRequest{Snapshotter: sn, Key: key, Parent: "base"}); err != nil {
					t.Fatalf("%s: prepare: %v", sn, err)
				}
				m, err := sc.Mounts(lctx, &snapshotsapi.MountsRequest{Snapshotter: sn, Key: key})
				if err != nil || len(m.Mounts) != 1 || (sn != "overlayfs" && !strings.HasPrefix(m.Mounts[0].Source, "/dev/mapper/")) {
					t.Fatalf("%s: mounts %v (%v)", sn, m, err)
				}
				res.PrepareMs[sn] = append(res.PrepareMs[sn], msOf(time.Since(t0)))
			}
			if sn == "thinctl" {
				r.serverTimes(logAt, res.ServerMs, "Prepare", "Mounts")
			}
			kw.phase("remove/" + sn)
			logAt = r.snapLogSize()
			t0 := time.Now()
			if _, err := lc.Delete(ctx, &leasesapi.DeleteRequest{ID: id, Sync: true}); err != nil {
				t.Fatalf("%s: delete the lease: %v", sn, err)
			}
			res.RemoveMs[sn] = append(res.RemoveMs[sn], msOf(time.Since(t0))/float64(res.PerRound))
			if sn == "thinctl" {
				r.serverTimes(logAt, res.ServerMs, "Remove", "Cleanup")
			}
		}
	}

	layers := manyLayerImage(res.Layers, res.LayerKiB<<10)
	for _, sn := range names[:2] {
		archive := filepath.Join(t.TempDir(), "twenty.tar")
		ref := "thinctl.test/twenty-" + sn + ":latest"
		writeImageArchive(t, archive, ref, layers)
		kw.phase("import/" + sn)
		t0 := time.Now()
		r.ctrT(t, "images", "import", "--snapshotter", sn, archive)
		res.ImportMs[sn] = msOf(time.Since(t0))
		kw.phase("images rm/" + sn)
		r.ctrT(t, "images", "rm", "--sync", ref)
	}
	kw.phase("end")
	res.IOErrors = kw.stop()

	med := func(m map[string][]float64, sn string) float64 { return medianF(m[sn]) }
	pr := med(res.PrepareMs, "devmapper") / med(res.PrepareMs, "thinctl")
	rr := med(res.RemoveMs, "devmapper") / med(res.RemoveMs, "thinctl")
	ir := res.ImportMs["devmapper"] / res.ImportMs["thinctl"]
	for _, sn := range names {
		t.Logf("%-9s Prepare+Mounts %7.1f ms (median of %d), Remove %7.1f ms per snapshot (median of %d rounds), import %.1f s",
			sn, med(res.PrepareMs, sn), len(res.PrepareMs[sn]), med(res.RemoveMs, sn), len(res.RemoveMs[sn]), res.ImportMs[sn]/1000)
	}
	for _, m := range []string{"Prepare", "Prepare.create", "Prepare.activate", "Mounts", "Remove", "Remove.remove", "Cleanup"} {
		t.Logf("thinctl-snapshotter's own time in %s: median %.1f ms over %d requests", m, medianF(res.ServerMs[m]), len(res.ServerMs[m]))
	}
	for _, e := range res.IOErrors {
		t.Logf("kernel: %d buffer I/O errors during %s on %v, e.g. %q", e.Count, e.Phase, e.Devices, e.Sample)
	}
	js, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	if err := benchwire.Write(os.Stdout, benchwire.CtrdTag, js); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("BENCH prepare_vs_ctrd_devmapper=%.2f\nBENCH remove_vs_ctrd_devmapper=%.2f\nBENCH import_vs_ctrd_devmapper=%.2f\n", pr, rr, ir)
}

// devmapperConfig is the containerd configuration of its devmapper
// snapshotter on pool poolName: the thinctl pool's base size, discards on,
// removal synchronous.
func devmapperConfig(root, poolName string) string {
	return fmt.Sprintf(`
[plugins."io.containerd.snapshotter.v1.devmapper"]
  root_path = %q
  pool_name = %q
  base_image_size = "256MB"
  async_remove = false
  discard_blocks = true
  fs_type = "ext4"
`, root, poolName)
}

// snapLogSize is the length of the running snapshotter's log so far.
func (r *rig) snapLogSize() int64 {
	st, err := os.Stat(r.snapLog)
	if err != nil {
		return 0
	}
	return st.Size()
}

// requestLine matches the snapshotter's --debug lines: one per request
// ("msg=request method=Prepare took=...") and one per pool step of a
// request ("msg=step method=Prepare step=create took=...", counted as
// "Prepare.create").
var requestLine = regexp.MustCompile(`msg=(?:request|step) method=(\w+)(?: step=(\w+))? took=(\S+)`)

// serverTimes adds the durations the snapshotter logged (--debug) for the
// given methods since log offset from to out, in milliseconds.
func (r *rig) serverTimes(from int64, out map[string][]float64, methods ...string) {
	f, err := os.Open(r.snapLog)
	if err != nil {
		return
	}
	defer f.Close()
	if _, err := f.Seek(from, 0); err != nil {
		return
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := requestLine.FindStringSubmatch(sc.Text())
		if m == nil || !slices.Contains(methods, m[1]) {
			continue
		}
		name := m[1]
		if m[2] != "" {
			name += "." + m[2]
		}
		if d, err := time.ParseDuration(m[3]); err == nil {
			out[name] = append(out[name], msOf(d))
		}
	}
}

// kernelWatch reads the kernel log while a measurement runs and counts
// its "Buffer I/O error" lines by phase; a poller keeps the name each dm
// minor had last, so that a line naming dm-N can be attributed even after
// the device went.
type kernelWatch struct {
	mu     sync.Mutex
	cur    string
	byPh   map[string]*benchwire.CtrdIOErrors
	order  []string
	last   map[string]string // "dm-N" -> the name it had at the last poll
	done   chan struct{}
	wg     sync.WaitGroup
	kmsg   *os.File
	failed string
}

var bufferIOError = regexp.MustCompile(`Buffer I/O error on dev (dm-\d+)`)

func watchKernelIOErrors(t *testing.T) *kernelWatch {
	w := &kernelWatch{cur: "setup", byPh: map[string]*benchwire.CtrdIOErrors{}, last: map[string]string{}, done: make(chan struct{})}
	f, err := os.Open("/dev/kmsg")
	if err == nil {
		_, err = f.Seek(0, 2) // only what is logged from now on
	}
	if err != nil {
		t.Logf("note: cannot read /dev/kmsg (%v): kernel errors are not counted", err)
		w.failed = err.Error()
		return w
	}
	w.kmsg = f
	w.wg.Add(1)
	go func() {
		buf := make([]byte, 8192)
		for {
			n, err := f.Read(buf) // one record per read
			if errors.Is(err, syscall.EPIPE) {
				continue // records were overwritten before we read them
			}
			if err != nil {
				return
			}
			line := string(buf[:n])
			if _, msg, ok := strings.Cut(line, ";"); ok {
				line = strings.TrimSpace(strings.SplitN(msg, "\n", 2)[0])
			}
			if m := bufferIOError.FindStringSubmatch(line); m != nil {
				w.record(m[1], line)
			}
		}
	}()
	go func() {
		defer w.wg.Done()
		tick := time.NewTicker(25 * time.Millisecond)
		defer tick.Stop()
		for {
			w.pollNames()
			select {
			case <-w.done:
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

func (w *kernelWatch) pollNames() {
	ms, _ := filepath.Glob("/sys/block/dm-*/dm/name")
	for _, p := range ms {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		dev := filepath.Base(filepath.Dir(filepath.Dir(p)))
		w.mu.Lock()
		w.last[dev] = strings.TrimSpace(string(b))
		w.mu.Unlock()
	}
}

func (w *kernelWatch) phase(p string) {
	w.mu.Lock()
	w.cur = p
	w.mu.Unlock()
}

func (w *kernelWatch) record(dev, line string) {
	// The device's name now, or at the last poll when it is gone.
	name := ""
	if b, err := os.ReadFile("/sys/block/" + dev + "/dm/name"); err == nil {
		name = strings.TrimSpace(string(b))
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if name == "" {
		name = w.last[dev] + " (gone)"
	}
	e := w.byPh[w.cur]
	if e == nil {
		e = &benchwire.CtrdIOErrors{Phase: w.cur, Sample: line}
		w.byPh[w.cur] = e
		w.order = append(w.order, w.cur)
	}
	e.Count++
	if d := dev + "=" + name; !slices.Contains(e.Devices, d) {
		e.Devices = append(e.Devices, d)
	}
}

// stop ends the watch and returns the counts, each device given with the
// name it had when the error was logged.
func (w *kernelWatch) stop() []benchwire.CtrdIOErrors {
	if w.kmsg == nil {
		return nil
	}
	time.Sleep(500 * time.Millisecond) // let the reader catch up
	close(w.done)
	w.kmsg.Close() // ends the blocked read (the reader is not waited for)
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []benchwire.CtrdIOErrors
	for _, p := range w.order {
		out = append(out, *w.byPh[p])
	}
	return out
}

// devmapperPool makes a thin pool for containerd's devmapper snapshotter
// the way its documentation does (loop devices, dmsetup), with thinctl's
// block size (64 KiB) and zeroing setting, and removes it (and every thin
// device on it) when the test ends. It returns the pool's name and its
// metadata device.
func devmapperPool(t *testing.T, dataSize, metaSize int64) (string, string) {
	t.Helper()
	data := testenv.SparseFile(t, "data", dataSize)
	meta := testenv.SparseFile(t, "meta", metaSize)
	loop := func(f string) string {
		out, err := exec.Command("losetup", "--find", "--show", f).CombinedOutput()
		if err != nil {
			t.Fatalf("losetup %s: %v: %s", f, err, out)
		}
		dev := strings.TrimSpace(string(out))
		t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
		return dev
	}
	dataDev, metaDev := loop(data), loop(meta)
	name := "ctrd-bench-pool"
	table := fmt.Sprintf("0 %d thin-pool %s %s 128 32768 1 skip_block_zeroing", dataSize/512, metaDev, dataDev)
	if out, err := exec.Command("dmsetup", "create", name, "--table", table).CombinedOutput(); err != nil {
		t.Fatalf("dmsetup create %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		for _, d := range devmapperThins(name) {
			exec.Command("dmsetup", "remove", "--retry", d).Run()
		}
		if out, err := exec.Command("dmsetup", "remove", "--retry", name).CombinedOutput(); err != nil {
			t.Logf("dmsetup remove %s: %v: %s", name, err, out)
		}
	})
	return name, metaDev
}

// devmapperThins lists the active thin devices containerd's devmapper
// snapshotter made on pool (named pool-snap-N).
func devmapperThins(pool string) []string {
	out, _ := exec.Command("dmsetup", "ls").Output()
	var ds []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], pool+"-") {
			ds = append(ds, f[0])
		}
	}
	return ds
}

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// medianF is the median (the mean of the two middle values of an even
// count), as tests/bench computes it.
func medianF(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	switch n := len(s); {
	case n == 0:
		return 0
	case n%2 == 1:
		return s[n/2]
	default:
		return (s[n/2-1] + s[n/2]) / 2
	}
}

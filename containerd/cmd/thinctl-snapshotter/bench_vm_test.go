//go:build vm

package main

import (
	"context"
	"flag"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	leasesapi "github.com/containerd/containerd/api/services/leases/v1"
	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/thinctl/thinctl/internal/testenv"
)

// TestBenchVsContainerdDevmapper measures thinctl-snapshotter against
// containerd's built-in devmapper snapshotter in one containerd (Debian's
// 1.6.20), each on its own pool of the same size and block size, through
// the same gRPC API: Prepare+Mounts per snapshot, Remove per snapshot (a
// lease deleted with sync: containerd's garbage collection removes the
// snapshots from the snapshotter) and `ctr images import` of a 20-layer
// image. It prints BENCH lines (ratios: devmapper time / thinctl time). It
// runs only when named with -test.run (a measurement, minutes long).
func TestBenchVsContainerdDevmapper(t *testing.T) {
	if f := flag.Lookup("test.run"); f == nil || !strings.Contains(f.Value.String(), "VsContainerdDevmapper") {
		t.Skip("a measurement: run it by name (--run TestBenchVsContainerdDevmapper)")
	}
	testenv.RequireDeviceMapper(t)
	containerd := testenv.RequireTool(t, "containerd")
	testenv.RequireTool(t, "ctr")
	testenv.RequireTool(t, "dmsetup")
	testenv.RequireTool(t, "losetup")

	const dataSize, metaSize = 4 << 30, 64 << 20
	poolName := devmapperPool(t, dataSize, metaSize)
	r := newRig(t)
	r.startSnapshotter()
	r.startContainerd(containerd, fmt.Sprintf(`
[plugins."io.containerd.snapshotter.v1.devmapper"]
  root_path = %q
  pool_name = %q
  base_image_size = "256MB"
  async_remove = false
  discard_blocks = true
  fs_type = "ext4"
`, filepath.Join(t.TempDir(), "devmapper"), poolName))

	conn, err := grpc.NewClient("unix://"+r.ctrdSock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := namespaces.WithNamespace(context.Background(), "bench")
	sc, lc := snapshotsapi.NewSnapshotsClient(conn), leasesapi.NewLeasesClient(conn)
	names := []string{"thinctl", "devmapper"}
	for _, sn := range names {
		// The committed parent every measured snapshot starts from, kept
		// by a gc.root label.
		if _, err := sc.Prepare(ctx, &snapshotsapi.PrepareSnapshotRequest{Snapshotter: sn, Key: "base-active"}); err != nil {
			t.Fatalf("%s: prepare the base: %v", sn, err)
		}
		if _, err := sc.Commit(ctx, &snapshotsapi.CommitSnapshotRequest{Snapshotter: sn, Name: "base", Key: "base-active",
			Labels: map[string]string{"containerd.io/gc.root": "bench"}}); err != nil {
			t.Fatalf("%s: commit the base: %v", sn, err)
		}
	}

	const perRound, rounds = 10, 2
	prep := map[string][]time.Duration{}
	rm := map[string][]time.Duration{}
	for round := range rounds {
		order := names
		if round%2 == 1 {
			order = []string{names[1], names[0]}
		}
		for _, sn := range order {
			id := fmt.Sprintf("bench-%s-%d", sn, round)
			if _, err := lc.Create(ctx, &leasesapi.CreateRequest{ID: id}); err != nil {
				t.Fatal(err)
			}
			lctx := leases.WithLease(ctx, id)
			for i := range perRound {
				key := fmt.Sprintf("%s-%d", id, i)
				t0 := time.Now()
				if _, err := sc.Prepare(lctx, &snapshotsapi.PrepareSnapshotRequest{Snapshotter: sn, Key: key, Parent: "base"}); err != nil {
					t.Fatalf("%s: prepare: %v", sn, err)
				}
				m, err := sc.Mounts(lctx, &snapshotsapi.MountsRequest{Snapshotter: sn, Key: key})
				if err != nil || len(m.Mounts) != 1 || !strings.HasPrefix(m.Mounts[0].Source, "/dev/mapper/") {
					t.Fatalf("%s: mounts %v (%v)", sn, m, err)
				}
				prep[sn] = append(prep[sn], time.Since(t0))
			}
			t0 := time.Now()
			if _, err := lc.Delete(ctx, &leasesapi.DeleteRequest{ID: id, Sync: true}); err != nil {
				t.Fatalf("%s: delete the lease: %v", sn, err)
			}
			rm[sn] = append(rm[sn], time.Since(t0)/perRound)
		}
	}

	layers := manyLayerImage(20, 256<<10)
	imp := map[string]time.Duration{}
	for _, sn := range names {
		archive := filepath.Join(t.TempDir(), "twenty.tar")
		ref := "thinctl.test/twenty-" + sn + ":latest"
		writeImageArchive(t, archive, ref, layers)
		t0 := time.Now()
		r.ctrT(t, "images", "import", "--snapshotter", sn, archive)
		imp[sn] = time.Since(t0)
		r.ctrT(t, "images", "rm", "--sync", ref)
	}

	ratio := func(m map[string][]time.Duration) (float64, time.Duration, time.Duration) {
		a, b := median(m["devmapper"]), median(m["thinctl"])
		return float64(a) / float64(b), b, a
	}
	pr, pt, pd := ratio(prep)
	rr, rt, rd := ratio(rm)
	ir := float64(imp["devmapper"]) / float64(imp["thinctl"])
	t.Logf("Prepare+Mounts per snapshot, median of %d: thinctl %v, devmapper %v", perRound*rounds, pt.Round(time.Millisecond), pd.Round(time.Millisecond))
	t.Logf("Remove per snapshot (sync lease delete / %d), median of %d rounds: thinctl %v, devmapper %v", perRound, rounds, rt.Round(time.Millisecond), rd.Round(time.Millisecond))
	t.Logf("ctr images import of 20 layers: thinctl %v, devmapper %v", imp["thinctl"].Round(time.Millisecond), imp["devmapper"].Round(time.Millisecond))
	fmt.Printf("BENCH prepare_vs_ctrd_devmapper=%.2f\nBENCH remove_vs_ctrd_devmapper=%.2f\nBENCH import_vs_ctrd_devmapper=%.2f\n", pr, rr, ir)
}

// devmapperPool makes a thin pool for containerd's devmapper snapshotter
// the way its documentation does (loop devices, dmsetup), with thinctl's
// block size (64 KiB) and zeroing setting, and removes it (and every thin
// device on it) when the test ends.
func devmapperPool(t *testing.T, dataSize, metaSize int64) string {
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
		out, _ := exec.Command("dmsetup", "ls").Output()
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], name+"-") {
				exec.Command("dmsetup", "remove", "--retry", f[0]).Run()
			}
		}
		if out, err := exec.Command("dmsetup", "remove", "--retry", name).CombinedOutput(); err != nil {
			t.Logf("dmsetup remove %s: %v: %s", name, err, out)
		}
	})
	return name
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

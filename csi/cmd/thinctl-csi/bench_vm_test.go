//go:build vm

package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/dm"
	"github.com/thinctl/thinctl/internal/testenv"
	"github.com/thinctl/thinctl/tests/bench/lvmpeer"
	"github.com/thinctl/thinctl/thinpool"
)

// The bench's geometry: both pools 1 GiB of data, 64 MiB of metadata, 64
// KiB blocks; every volume 64 MiB of ext4.
const (
	benchPoolMiB   = 1024
	benchMetaMiB   = 64
	benchVolumeMiB = 64
	benchN         = 10
)

// lvmRig is a volume group with a thin pool on a loop device, driven by
// lvm2's processes as TopoLVM and lvm-localpv drive it.
type lvmRig struct {
	t    *testing.T
	env  []string
	loop string
}

// lvm runs one of lvm2's commands through its multi-call binary.
func (l *lvmRig) lvm(args ...string) { l.t.Helper(); l.run("lvm", args...) }

func (l *lvmRig) run(name string, args ...string) {
	l.t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), l.env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		l.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func newLVMRig(t *testing.T) *lvmRig {
	t.Helper()
	dir := t.TempDir()
	img := filepath.Join(dir, "pv")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate((benchPoolMiB + benchMetaMiB + 64) << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out, err := exec.Command("losetup", "--show", "-f", img).Output()
	if err != nil {
		t.Fatalf("losetup: %v", err)
	}
	l := &lvmRig{t: t, loop: strings.TrimSpace(string(out)), env: []string{"LVM_SYSTEM_DIR=" + dir, "LVM_SUPPRESS_FD_WARNINGS=1"}}
	if err := os.WriteFile(filepath.Join(dir, "lvm.conf"), []byte(lvmpeer.Config(l.loop, dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd := exec.Command("lvm", "vgremove", "-q", "-f", "csibench")
		cmd.Env = append(os.Environ(), l.env...)
		_ = cmd.Run()
		_ = exec.Command("losetup", "-d", l.loop).Run()
	})
	l.lvm("pvcreate", "-q", "-y", l.loop)
	l.lvm("vgcreate", "-q", "csibench", l.loop)
	l.lvm("lvcreate", "-q", "--type", "thin-pool", "-L", fmt.Sprintf("%dm", benchPoolMiB), "--poolmetadatasize", fmt.Sprintf("%dm", benchMetaMiB),
		"--chunksize", "64k", "--zero", "n", "--poolmetadataspare", "n", "-n", "pool", "csibench")
	return l
}

func median(xs []time.Duration) time.Duration {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// TestBenchCSIVsLVM measures, in one guest, a volume made usable through
// the driver's gRPC (CreateVolume + NodeStageVolume + NodePublishVolume)
// against what TopoLVM and lvm-localpv do for one (`lvcreate` of a thin
// LV, mkfs.ext4, mount), and CreateSnapshot against `lvcreate -s` of a
// thin LV; 10 of each, medians. It prints BENCH lines (lvm time / driver
// time). It runs only when named with -test.run (a measurement); make
// bench runs it in its guest (tests/bench/run.sh, peer stage csi_lvm).
func TestBenchCSIVsLVM(t *testing.T) {
	if f := flag.Lookup("test.run"); f == nil || !strings.Contains(f.Value.String(), "BenchCSIVsLVM") {
		t.Skip("a measurement: run it by name (--run TestBenchCSIVsLVM)")
	}
	// lvm2's multi-call binary (tests/bench/testdata/vm-debs puts it in
	// the guest; `lvcreate -s` wants the dm-snapshot module loaded).
	for _, tool := range []string{"lvm", "mkfs.ext4", "losetup"} {
		testenv.RequireTool(t, tool)
	}
	s := startServerWith(t, thinpool.Options{DataSize: benchPoolMiB << 20, MetadataSize: benchMetaMiB << 20,
		BaseSize: benchVolumeMiB << 20})
	cl := dial(t, s)
	ctx := ctxT(t)
	l := newLVMRig(t)
	mnt := t.TempDir()

	var csiCreate, csiSnap, lvmCreate, lvmSnap []time.Duration
	// A second snapshot right after the first, of a filesystem with
	// nothing left to write back: logged, to show what the write-back
	// under the origin's suspend costs.
	var csiSnapClean, lvmSnapClean []time.Duration
	// The kernel's part of a snapshot of a mounted volume, measured bare
	// right after the second snapshot: a suspend of the volume's device
	// (which freezes its filesystem: write-back, journal checkpoint,
	// superblock) and its resume (the thaw), as the driver's Pool.Create
	// does around its create_snap message. Logged beside the clean
	// CreateSnapshot it bounds.
	var suspendFloor []time.Duration
	dmc, err := dm.Default()
	if err != nil {
		t.Fatal(err)
	}
	var vols, snaps []string
	for i := 0; i < benchN; i++ {
		staging, target := filepath.Join(s.pathRoot, fmt.Sprintf("s%d", i)), filepath.Join(s.pathRoot, fmt.Sprintf("t%d", i))
		if err := os.Mkdir(staging, 0o750); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		vol := must(cl.c.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: fmt.Sprintf("v%d", i), VolumeCapabilities: []*csi.VolumeCapability{capOf(false)},
			CapacityRange: &csi.CapacityRange{RequiredBytes: benchVolumeMiB << 20}})).GetVolume()
		must(cl.n.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: vol.GetVolumeId(), StagingTargetPath: staging, VolumeCapability: capOf(false)}))
		must(cl.n.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: vol.GetVolumeId(), StagingTargetPath: staging, TargetPath: target,
			VolumeCapability: capOf(false)}))
		csiCreate = append(csiCreate, time.Since(start))
		if err := os.WriteFile(filepath.Join(target, "f"), []byte("data"), 0o644); err != nil {
			t.Fatal(err)
		}
		start = time.Now()
		snap := must(cl.c.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: fmt.Sprintf("s%d", i), SourceVolumeId: vol.GetVolumeId()})).GetSnapshot()
		csiSnap = append(csiSnap, time.Since(start))
		start = time.Now()
		snap2 := must(cl.c.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: fmt.Sprintf("c%d", i), SourceVolumeId: vol.GetVolumeId()})).GetSnapshot()
		csiSnapClean = append(csiSnapClean, time.Since(start))
		name := dmNameOf(t, target)
		start = time.Now()
		if err := dmc.Suspend(name, dm.SuspendOptions{}); err != nil {
			t.Fatalf("suspend %s: %v", name, err)
		}
		if err := dmc.Resume(ctx, name); err != nil {
			t.Fatalf("resume %s: %v", name, err)
		}
		suspendFloor = append(suspendFloor, time.Since(start))
		snaps = append(snaps, snap2.GetSnapshotId())
		vols, snaps = append(vols, vol.GetVolumeId()), append(snaps, snap.GetSnapshotId())
		defer unpublishUnstage(t, cl, vol.GetVolumeId(), staging, target)

		lv := fmt.Sprintf("v%d", i)
		dir := filepath.Join(mnt, lv)
		if err := os.Mkdir(dir, 0o750); err != nil {
			t.Fatal(err)
		}
		start = time.Now()
		l.lvm("lvcreate", "-q", "-V", fmt.Sprintf("%dm", benchVolumeMiB), "-T", "csibench/pool", "-n", lv)
		l.run("mkfs.ext4", "-q", "-F", "-E", "nodiscard", "/dev/mapper/csibench-"+lv)
		if err := unix.Mount("/dev/mapper/csibench-"+lv, dir, "ext4", 0, ""); err != nil {
			t.Fatalf("mount %s: %v", lv, err)
		}
		lvmCreate = append(lvmCreate, time.Since(start))
		defer unix.Unmount(dir, 0)
		if err := os.WriteFile(filepath.Join(dir, "f"), []byte("data"), 0o644); err != nil {
			t.Fatal(err)
		}
		start = time.Now()
		l.lvm("lvcreate", "-q", "-s", "-n", lv+"snap", "csibench/"+lv)
		lvmSnap = append(lvmSnap, time.Since(start))
		start = time.Now()
		l.lvm("lvcreate", "-q", "-s", "-n", lv+"clean", "csibench/"+lv)
		lvmSnapClean = append(lvmSnapClean, time.Since(start))
	}
	cm, cs, lm, ls := median(csiCreate), median(csiSnap), median(lvmCreate), median(lvmSnap)
	t.Logf("CreateVolume+NodeStage+NodePublish %v, lvcreate+mkfs.ext4+mount %v; CreateSnapshot %v, lvcreate -s %v (medians of %d)",
		cm, lm, cs, ls, benchN)
	t.Logf("a second snapshot right after, nothing to write back: CreateSnapshot %v, lvcreate -s %v", median(csiSnapClean), median(lvmSnapClean))
	t.Logf("the kernel's suspend (freeze) + resume (thaw) of a mounted volume's device alone, right after: %v (median; all: %v)",
		median(suspendFloor), suspendFloor)
	fmt.Printf("BENCHCSI create_ms thinctl=%.2f lvm=%.2f snapshot_ms thinctl=%.2f lvm=%.2f n=%d\n",
		ms(cm), ms(lm), ms(cs), ms(ls), benchN)
	fmt.Printf("BENCH csi_create_vs_lvm=%.2f\n", float64(lm)/float64(cm))
	fmt.Printf("BENCH csi_snapshot_vs_lvm=%.2f\n", float64(ls)/float64(cs))
	t.Cleanup(func() {
		for _, id := range snaps {
			must(cl.c.DeleteSnapshot(ctx, &csi.DeleteSnapshotRequest{SnapshotId: id}))
		}
		for _, id := range vols {
			must(cl.c.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: id}))
		}
	})
}

// dmNameOf returns the device-mapper name of the device mounted at dir.
func dmNameOf(t *testing.T, dir string) string {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(fmt.Sprintf("/sys/dev/block/%d:%d/dm/name", unix.Major(st.Dev), unix.Minor(st.Dev)))
	if err != nil {
		t.Fatalf("the device mounted at %s is not a device-mapper device: %v", dir, err)
	}
	return strings.TrimSpace(string(b))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

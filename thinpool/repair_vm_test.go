//go:build vm

package thinpool

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"syscall"
	"testing"

	"github.com/thinctl/thinctl/internal/failpoint"
	"github.com/thinctl/thinctl/internal/testenv"
	"github.com/thinctl/thinctl/thinpool/internal/metaswap"
)

// repairOptions keeps thin_check and thin_repair quick under emulation.
func repairOptions() Options {
	return Options{DataSize: 256 * MiB, MetadataSize: 8 * MiB, BaseSize: 64 * MiB}
}

// damageSpaceMap breaks the checksum of the block holding the data space
// map's reference count tree in the metadata file of a pool that is down:
// thin_check fails on it, while thin_repair rebuilds the space maps from
// the mapping trees, which are intact.
func damageSpaceMap(t *testing.T, meta string) {
	t.Helper()
	f, err := os.OpenFile(meta, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sb := make([]byte, 4096)
	if _, err := f.ReadAt(sb, 0); err != nil {
		t.Fatal(err)
	}
	// superblock: data_space_map_root at 64 (nr_blocks, nr_allocated,
	// bitmap_root, ref_count_root; little-endian u64 each).
	blk := binary.LittleEndian.Uint64(sb[64+24:])
	if blk == 0 || blk*4096 >= 8*MiB {
		t.Fatalf("implausible ref count root %d", blk)
	}
	junk := bytes.Repeat([]byte{0xa5}, 64)
	if _, err := f.WriteAt(junk, int64(blk)*4096+64); err != nil {
		t.Fatal(err)
	}
	must(t, f.Sync())
	if out, err := exec.Command("thin_check", meta).CombinedOutput(); err == nil {
		t.Fatalf("thin_check passes the damaged metadata; the test proves nothing\n%s", out)
	}
}

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

const repairKilledEnv = "THINCTL_TEST_REPAIR_KILLED_ROOT"

// TestHelperRepairKilledAtAFailpoint runs Repair in a child process with
// the failpoint $THINCTL_TEST_REPAIR_KILLED_POINT armed to kill it.
func TestHelperRepairKilledAtAFailpoint(t *testing.T) {
	root := os.Getenv(repairKilledEnv)
	if root == "" {
		t.Skip("helper process only")
	}
	p, err := Open(context.Background(), root, OpenOptions{})
	must(t, err)
	must(t, failpoint.Enable(os.Getenv(repairKilledEnv+"_POINT")+"=kill"))
	_, err = p.Repair(context.Background(), RepairOptions{})
	t.Fatalf("Repair returned (%v); the failpoint should have killed the process", err)
}

// TestARepairKilledAtEveryStepIsFinishedByTheNextOne kills Repair of a
// pool whose metadata thin_check rejects at each of its steps; the next
// Open works, the next Repair finishes, the data written before reads
// back, the old metadata file is untouched, and registry, thin_dump of
// the repaired metadata and the live devices agree.
func TestARepairKilledAtEveryStepIsFinishedByTheNextOne(t *testing.T) {
	testenv.RequireTool(t, "thin_check")
	testenv.RequireTool(t, "thin_repair")
	if !failpoint.Compiled {
		t.Skip("built without the failpoints tag")
	}
	for _, point := range []string{failpoint.RepairAfterDown, failpoint.RepairAfterRepair, failpoint.RepairAfterSwap} {
		t.Run(filepath.Base(point), func(t *testing.T) {
			ctx := context.Background()
			p, root := newVMPool(t, repairOptions())
			must(t, p.Create(ctx, "a", "", CreateOptions{}))
			mp := mustMount(t, p, "a")
			writeFile(t, filepath.Join(mp, "before"), "written before the damage\n")
			must(t, p.Unmount(ctx, "a"))
			must(t, p.Create(ctx, "b", "a", CreateOptions{}))
			must(t, p.Down(ctx))
			oldMeta := p.metaFilePath()
			p.Close()
			damageSpaceMap(t, oldMeta)
			oldSum := fileSum(t, oldMeta)

			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperRepairKilledAtAFailpoint$")
			cmd.Env = append(os.Environ(), repairKilledEnv+"="+root, repairKilledEnv+"_POINT="+point)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("the helper repair was not killed at %s: %v\n%s", point, err, out)
			}

			p, err = Open(ctx, root, OpenOptions{})
			if err != nil {
				t.Fatalf("Open after a repair killed at %s: %v", point, err)
			}
			defer p.Close()
			res, err := p.Repair(ctx, RepairOptions{})
			if err != nil {
				t.Fatalf("Repair after one killed at %s: %v", point, err)
			}
			// Killed after the switch, the next one finds the repaired
			// metadata, which passes thin_check.
			if point != failpoint.RepairAfterSwap && !res.Repaired {
				t.Fatalf("Repair after one killed at %s did not repair: %+v", point, res)
			}
			if len(res.Lost) != 0 {
				t.Fatalf("devices lost: %v", res.Lost)
			}
			if fileSum(t, oldMeta) != oldSum {
				t.Fatal("the old metadata file changed")
			}
			partials, _ := filepath.Glob(filepath.Join(p.dir, "*"+metaswap.PartialSuffix))
			if len(partials) != 0 {
				t.Fatalf("half-written metadata left: %v", partials)
			}
			st, err := p.Status()
			must(t, err)
			if st.State != "rw" || st.NeedsCheck {
				t.Fatalf("after repair: %+v", st)
			}
			mp = mustMount(t, p, "b")
			if got := readFile(t, filepath.Join(mp, "before")); got != "written before the damage\n" {
				t.Fatalf("read back %q", got)
			}
			must(t, p.Unmount(ctx, "b"))
			must(t, p.Create(ctx, "c", "", CreateOptions{}))
			r, err := p.Check(ctx, CheckOptions{})
			must(t, err)
			if !r.Consistent {
				t.Fatalf("check after repair: %+v", r)
			}
			assertRegistryIsTheMetadata(t, p)
		})
	}
}

// assertRegistryIsTheMetadata takes the pool down, compares the registry's
// thin ids with thin_dump of the metadata pool.json names (thin_check
// passes it) and brings the pool up again.
func assertRegistryIsTheMetadata(t *testing.T, p *Pool) {
	t.Helper()
	devs, err := p.Devices()
	must(t, err)
	want := []uint32{p.cfg.BaseDeviceID}
	for _, d := range devs {
		want = append(want, d.DeviceID)
	}
	sort.Slice(want, func(i, j int) bool { return want[i] < want[j] })
	must(t, p.Down(context.Background()))
	thinCheck(t, p.metaFilePath())
	got := thinDumpIDs(t, p.metaFilePath())
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("thin_dump of %s: %v; registry and base: %v", p.metaFilePath(), got, want)
	}
	p2, err := Open(context.Background(), p.root, OpenOptions{})
	must(t, err)
	p2.Close()
}

// TestARepairRefusesWhileADeviceIsMountedAndNamesIt leaves the pool as it
// was: the mounted device stays mounted and readable.
func TestARepairRefusesWhileADeviceIsMountedAndNamesIt(t *testing.T) {
	testenv.RequireTool(t, "thin_check")
	ctx := context.Background()
	p, _ := newVMPool(t, repairOptions())
	must(t, p.Create(ctx, "web", "", CreateOptions{}))
	mp := mustMount(t, p, "web")
	writeFile(t, filepath.Join(mp, "f"), "still here\n")
	_, err := p.Repair(ctx, RepairOptions{})
	if !errors.Is(err, ErrBusy) || !bytes.Contains([]byte(err.Error()), []byte("web (mounted at "+mp+")")) {
		t.Fatalf("Repair with web mounted: %v", err)
	}
	if got := readFile(t, filepath.Join(mp, "f")); got != "still here\n" {
		t.Fatalf("read back %q", got)
	}
	st, err := p.Status()
	must(t, err)
	if st.State != "rw" {
		t.Fatalf("pool state %s after a refused repair", st.State)
	}
}

// TestARepairOfAHealthyPoolOnlyActivatesItAgain: thin_check passes, so
// nothing is rebuilt and the metadata file stays the one pool.json named.
func TestARepairOfAHealthyPoolOnlyActivatesItAgain(t *testing.T) {
	testenv.RequireTool(t, "thin_check")
	ctx := context.Background()
	p, _ := newVMPool(t, repairOptions())
	must(t, p.Create(ctx, "a", "", CreateOptions{}))
	before := p.cfg.MetadataFile
	res, err := p.Repair(ctx, RepairOptions{})
	must(t, err)
	if res.Repaired || p.cfg.MetadataFile != before || res.NewMetadata != res.OldMetadata {
		t.Fatalf("repair of a healthy pool: %+v (metadata file %s, was %s)", res, p.cfg.MetadataFile, before)
	}
	if _, err := p.Activate(ctx, "a"); err != nil {
		t.Fatal(err)
	}
}

//go:build vm

package thinpool

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/thinctl/thinctl/fs"
)

func TestInitMakesThePoolDockerDid(t *testing.T) {
	o := smallOptions()
	var steps []string
	var last float64
	o.Progress = func(step string, f float64) { steps = append(steps, step); last = f }
	p, root := newVMPool(t, o)
	if len(steps) < 3 || last != 1 {
		t.Errorf("progress reported %q ending at %v", steps, last)
	}
	name := p.Name()
	if !strings.HasPrefix(name, "thinctl-") || !strings.HasSuffix(name, "-pool") {
		t.Fatalf("pool name %q", name)
	}
	f := strings.Fields(mustDmsetup(t, "table", name))
	// 0 <sectors> thin-pool <meta> <data> 128 32768 2 skip_block_zeroing error_if_no_space
	want := []string{"0", "2097152", "thin-pool"}
	if len(f) < 10 || strings.Join(f[:3], " ") != strings.Join(want, " ") || f[5] != "128" || f[6] != "32768" ||
		strings.Join(f[7:], " ") != "2 skip_block_zeroing error_if_no_space" {
		t.Fatalf("dmsetup table %s = %v", name, f)
	}
	st, err := p.Status()
	must(t, err)
	if st.TransactionID != 1 || st.State != "rw" || st.DataTotal != GiB || st.MetadataTotal != 64*MiB {
		t.Fatalf("status %+v", st)
	}
	for _, path := range []string{filepath.Join(root, "devicemapper"), filepath.Join(root, "devicemapper", "data"),
		filepath.Join(root, "devicemapper", "pool.json")} {
		mode := statMode(t, path)
		if mode&0o077 != 0 {
			t.Errorf("%s has mode %o, want no group/other bits", path, mode)
		}
	}
	if _, err := Init(context.Background(), root, smallOptions()); !isErr(err, ErrAlreadyInit) {
		t.Fatalf("second Init = %v, want ErrAlreadyInit", err)
	}
	// Remove (its space returned in the background, which ReturnSpace
	// waits for) and Grow report their steps too.
	steps = nil
	must(t, p.Create(context.Background(), "x", "", CreateOptions{}))
	must(t, p.Remove(context.Background(), "x"))
	must(t, p.ReturnSpace(context.Background()))
	must(t, p.Grow(context.Background(), GrowOptions{DataSize: 2 * GiB}))
	if got, want := fmt.Sprintf("%q", steps), `["deleting \"x\" (its space is returned in the background)" `+
		`"growing the data and metadata files" "reloading the thin pool at its new size"]`; got != want {
		t.Errorf("Remove and Grow reported %s, want %s", got, want)
	}
	// Two roots on one host get different pools.
	p2, _ := newVMPool(t, smallOptions())
	if p2.Name() == name {
		t.Fatalf("two roots share the pool name %s", name)
	}
}

func TestSnapshotsShareParentDataAndIsolateTheirOwn(t *testing.T) {
	for _, fsType := range []fs.Type{fs.Ext4, fs.XFS} {
		t.Run(string(fsType), func(t *testing.T) {
			o := smallOptions()
			o.Filesystem = fsType
			if fsType == fs.XFS {
				o.BaseSize = 320 * MiB // mkfs.xfs wants 300 MiB
			}
			p, root := newVMPool(t, o)
			must(t, p.Create(context.Background(), "a", "", CreateOptions{}))
			dirA := mustMount(t, p, "a")
			writeFile(t, filepath.Join(dirA, "from-a"), "parent data")
			must(t, p.Unmount(context.Background(), "a"))

			must(t, p.Create(context.Background(), "b", "a", CreateOptions{}))
			must(t, p.Create(context.Background(), "c", "b", CreateOptions{}))
			dirB := mustMount(t, p, "b")
			if got := readFile(t, filepath.Join(dirB, "from-a")); got != "parent data" {
				t.Fatalf("snapshot b reads %q", got)
			}
			writeFile(t, filepath.Join(dirB, "from-b"), "child data")
			dirC := mustMount(t, p, "c") // two snapshots mounted at once (xfs: nouuid)
			if got := readFile(t, filepath.Join(dirC, "from-a")); got != "parent data" {
				t.Fatalf("grandchild c reads %q", got)
			}
			if exists(filepath.Join(dirC, "from-b")) {
				t.Fatal("c was snapshotted before b's write but sees it")
			}
			dirA = mustMount(t, p, "a")
			if exists(filepath.Join(dirA, "from-b")) {
				t.Fatal("a write in the snapshot is visible in its parent")
			}

			// The kernel agrees: every active device is a thin target of our pool.
			devs, err := p.Devices()
			must(t, err)
			poolDev := strings.Fields(mustDmsetup(t, "info", "-c", "--noheadings", "-o", "major,minor", p.Name()))
			for _, d := range devs {
				if !d.Active || !d.Mounted {
					t.Fatalf("device %+v should be active and mounted", d)
				}
				tbl := strings.Fields(mustDmsetup(t, "table", filepath.Base(d.DevicePath)))
				want := fmt.Sprintf("0 %d thin %s %d", d.Size/512, strings.Join(strings.Split(poolDev[0], ":"), ":"), d.DeviceID)
				if strings.Join(tbl, " ") != want {
					t.Fatalf("dmsetup table of %s = %v, want %q", d.ID, tbl, want)
				}
			}
			// And the pool metadata holds exactly base + a, b, c.
			for _, id := range []string{"a", "b", "c"} {
				must(t, p.Unmount(context.Background(), id))
			}
			must(t, p.Down(context.Background()))
			ids := thinDumpIDs(t, p.metaFilePath())
			want := []uint32{p.cfg.BaseDeviceID}
			for _, d := range devs {
				want = append(want, d.DeviceID)
			}
			sort.Slice(want, func(i, j int) bool { return want[i] < want[j] })
			if fmt.Sprint(ids) != fmt.Sprint(want) {
				t.Fatalf("thin_dump lists %v, registry says %v", ids, want)
			}
			_ = root
		})
	}
}

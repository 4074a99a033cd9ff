//go:build vm

package thinpool

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/fs"
	"github.com/thinctl/thinctl/internal/failpoint"
	"github.com/thinctl/thinctl/thinpool/internal/dmname"
)

// thinLength is the kernel's table length of device id in bytes (0 when
// it is not active).
func thinLength(t *testing.T, p *Pool, id string) uint64 {
	t.Helper()
	out, err := dmsetup(t, "table", dmname.Thin(p.cfg.Key, mustDeviceID(t, p, id)))
	if err != nil {
		return 0
	}
	f := strings.Fields(out)
	if len(f) < 3 || f[2] != "thin" {
		t.Fatalf("dmsetup table of %s: %q", id, out)
	}
	n, err := strconv.ParseUint(f[1], 10, 64)
	must(t, err)
	return n * 512
}

// fsSize is the size statfs gives the filesystem mounted at mp.
func fsSize(t *testing.T, mp string) uint64 {
	t.Helper()
	var st unix.Statfs_t
	must(t, unix.Statfs(mp, &st))
	return st.Blocks * uint64(st.Bsize)
}

func TestResizeGrowsAMountedDeviceItsTableAndItsFilesystemOnlineKeepingItsData(t *testing.T) {
	for _, typ := range []fs.Type{fs.Ext4, fs.XFS} {
		t.Run(string(typ), func(t *testing.T) {
			o := smallOptions()
			o.Filesystem, o.BaseSize = typ, 320*MiB // mkfs.xfs wants 300 MB
			p, _ := newVMPool(t, o)
			ctx := context.Background()
			must(t, p.Create(ctx, "d", "", CreateOptions{}))
			mp := mustMount(t, p, "d")
			writeFile(t, filepath.Join(mp, "kept"), "written before the resize\n")
			before := fsSize(t, mp)

			must(t, p.Resize(ctx, "d", 640*MiB, ResizeOptions{}))
			if got := thinLength(t, p, "d"); got != 640*MiB {
				t.Fatalf("the kernel's table is %d bytes after the resize, want %d", got, 640*MiB)
			}
			if after := fsSize(t, mp); after <= before+200*MiB {
				t.Fatalf("the mounted %s has %d bytes after the resize (before %d), want about 512 MiB", typ, after, before)
			}
			if got := readFile(t, filepath.Join(mp, "kept")); got != "written before the resize\n" {
				t.Fatalf("the file reads %q after the resize", got)
			}
			d, err := p.Device("d")
			must(t, err)
			if d.Size != 640*MiB {
				t.Fatalf("the record says %d bytes, want %d", d.Size, 640*MiB)
			}
			// The same size again changes nothing.
			must(t, p.Resize(ctx, "d", 640*MiB, ResizeOptions{}))
		})
	}
}

func TestAnInactiveDeviceResizedGrowsItsFilesystemWhenNextMounted(t *testing.T) {
	for _, typ := range []fs.Type{fs.Ext4, fs.XFS} {
		t.Run(string(typ), func(t *testing.T) {
			o := smallOptions()
			o.Filesystem, o.BaseSize = typ, 320*MiB // mkfs.xfs wants 300 MB
			p, _ := newVMPool(t, o)
			ctx := context.Background()
			must(t, p.Create(ctx, "d", "", CreateOptions{}))
			mp := mustMount(t, p, "d")
			writeFile(t, filepath.Join(mp, "kept"), "before\n")
			before := fsSize(t, mp)
			must(t, p.Unmount(ctx, "d"))

			must(t, p.Resize(ctx, "d", 512*MiB, ResizeOptions{}))
			if got := thinLength(t, p, "d"); got != 0 {
				t.Fatalf("the inactive device was activated by the resize (%d bytes)", got)
			}
			mp = mustMount(t, p, "d")
			if got := thinLength(t, p, "d"); got != 512*MiB {
				t.Fatalf("the table is %d bytes after the mount, want %d", got, 512*MiB)
			}
			if after := fsSize(t, mp); after <= before+100*MiB {
				t.Fatalf("the %s has %d bytes after the mount (before %d)", typ, after, before)
			}
			if got := readFile(t, filepath.Join(mp, "kept")); got != "before\n" {
				t.Fatalf("the file reads %q", got)
			}
		})
	}
}

func TestResizeRefusesShrinkingOddSizesAndMoreThanThePoolAndKeepsTheDevice(t *testing.T) {
	p, _ := newVMPool(t, smallOptions())
	ctx := context.Background()
	must(t, p.Create(ctx, "d", "", CreateOptions{Size: 300 * MiB}))
	mp := mustMount(t, p, "d")
	writeFile(t, filepath.Join(mp, "kept"), "still here\n")
	for _, c := range []struct {
		what string
		size uint64
	}{
		{"a smaller size", 256 * MiB},
		{"a size that is no whole number of sectors", 400*MiB + 100},
		{"zero", 0},
		{"more than the pool's data space", 2 * GiB},
		{"the largest size there is", ^uint64(0) &^ 511},
	} {
		err := p.Resize(ctx, "d", c.size, ResizeOptions{})
		if !isErr(err, ErrInvalidSize) {
			t.Errorf("Resize to %s (%d): %v, want ErrInvalidSize", c.what, c.size, err)
		}
	}
	if got := thinLength(t, p, "d"); got != 300*MiB {
		t.Fatalf("the table is %d bytes after the refusals, want %d", got, 300*MiB)
	}
	d, err := p.Device("d")
	must(t, err)
	if d.Size != 300*MiB {
		t.Fatalf("the record says %d bytes", d.Size)
	}
	if got := readFile(t, filepath.Join(mp, "kept")); got != "still here\n" {
		t.Fatalf("the file reads %q", got)
	}
	if err := p.Resize(ctx, "nope", 512*MiB, ResizeOptions{}); !isErr(err, ErrDeviceNotFound) {
		t.Fatalf("Resize of an unknown device: %v", err)
	}
}

// kernelNode activates device id and returns its kernel node /dev/dm-N:
// with udev running, /dev/mapper/<name> is replaced while udev handles the
// change event a write's close raises, and can be missing for a moment.
func kernelNode(t *testing.T, p *Pool, id string) string {
	t.Helper()
	_, err := p.Activate(context.Background(), id)
	must(t, err)
	info, err := p.dm.Info(dmname.Thin(p.cfg.Key, mustDeviceID(t, p, id)))
	must(t, err)
	return fmt.Sprintf("/dev/dm-%d", unix.Minor(info.Dev))
}

// expectBytes reads back n bytes of b at off from path.
func expectBytes(t *testing.T, path string, b byte, n int, off int64) {
	t.Helper()
	f, err := os.Open(path)
	must(t, err)
	defer f.Close()
	got := make([]byte, n)
	if _, err := f.ReadAt(got, off); err != nil {
		t.Fatalf("read %s at %d: %v", path, off, err)
	}
	if !bytes.Equal(got, bytes.Repeat([]byte{b}, n)) {
		t.Fatalf("%s at %d does not hold %d bytes of %#x", path, off, n, b)
	}
}

func TestARawResizeGrowsOnlyTheDeviceAndLeavesItsBytesAlone(t *testing.T) {
	p, _ := newVMPool(t, smallOptions())
	ctx := context.Background()
	must(t, p.Create(ctx, "b", "", CreateOptions{}))
	// The base filesystem's superblocks are overwritten: a resize2fs or
	// e2fsck on activation would fail or rewrite them.
	writeAndSync(t, kernelNode(t, p, "b"), 0x5a, 2<<20, 0)
	must(t, p.Resize(ctx, "b", 512*MiB, ResizeOptions{Raw: true}))
	if got := thinLength(t, p, "b"); got != 512*MiB {
		t.Fatalf("the table is %d bytes, want %d", got, 512*MiB)
	}
	must(t, p.Deactivate(ctx, "b"))
	node := kernelNode(t, p, "b")
	expectBytes(t, node, 0x5a, 2<<20, 0)
	writeAndSync(t, node, 0xa5, 1<<20, 500<<20) // beyond the old end
	expectBytes(t, node, 0xa5, 1<<20, 500<<20)
}

func TestAResizeStoppedBetweenRecordAndTableIsFinishedByTheNextActivationOrRetry(t *testing.T) {
	p, root := newVMPool(t, smallOptions())
	ctx := context.Background()
	must(t, p.Create(ctx, "d", "", CreateOptions{}))
	must(t, p.Create(ctx, "e", "", CreateOptions{}))
	mp := mustMount(t, p, "d")
	writeFile(t, filepath.Join(mp, "kept"), "d's data\n")
	_, err := p.Activate(ctx, "e")
	must(t, err)

	must(t, failpoint.Enable(failpoint.ResizeAfterRecord+"=error"))
	t.Cleanup(failpoint.Disable)
	for _, id := range []string{"d", "e"} {
		if err := p.Resize(ctx, id, 448*MiB, ResizeOptions{}); err == nil {
			t.Fatalf("Resize of %s with %s armed succeeded", id, failpoint.ResizeAfterRecord)
		}
		if got := thinLength(t, p, id); got != 256*MiB {
			t.Fatalf("the table of %s is %d bytes after the stopped resize, want the old %d", id, got, 256*MiB)
		}
	}
	failpoint.Disable()
	must(t, p.Close())

	q, err := Open(ctx, root, OpenOptions{})
	must(t, err)
	defer q.Close()
	for _, id := range []string{"d", "e"} {
		d, err := q.Device(id)
		must(t, err)
		if d.Size != 448*MiB {
			t.Fatalf("%s's record after the reopen says %d bytes, want %d", id, d.Size, 448*MiB)
		}
	}
	// d by a retry of the same size, e by its next activation.
	must(t, q.Resize(ctx, "d", 448*MiB, ResizeOptions{}))
	_, err = q.Activate(ctx, "e")
	must(t, err)
	for _, id := range []string{"d", "e"} {
		if got := thinLength(t, q, id); got != 448*MiB {
			t.Fatalf("the table of %s is %d bytes after the retry, want %d", id, got, 448*MiB)
		}
	}
	// d is mounted where the pool mounts it, but by the Pool closed
	// above: GrowFS grows it there.
	must(t, q.GrowFS(ctx, "d", mp))
	if got := fsSize(t, mp); got < 400*MiB {
		t.Fatalf("d's filesystem has %d bytes after GrowFS", got)
	}
	if got := readFile(t, filepath.Join(mp, "kept")); got != "d's data\n" {
		t.Fatalf("d's file reads %q", got)
	}
	must(t, q.Deactivate(ctx, "e"))
	if err := q.GrowFS(ctx, "e", ""); !isErr(err, ErrNotActive) {
		t.Fatalf("GrowFS of an inactive device: %v, want ErrNotActive", err)
	}
}

//go:build vm

package thinpool

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// diskFlushes returns the flush requests the block layer completed on the
// whole disk holding path (field 16 of /sys/block/<disk>/stat, Linux 5.5+).
func diskFlushes(t *testing.T, path string) int64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	dir, err := filepath.EvalSymlinks(fmt.Sprintf("/sys/dev/block/%d:%d", unix.Major(st.Dev), unix.Minor(st.Dev)))
	if err != nil {
		t.Skipf("%s is not on a block device: %v", path, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "partition")); err == nil {
		dir = filepath.Dir(dir)
	}
	b, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b))
	if len(f) < 17 {
		t.Skip("this kernel does not count flushes")
	}
	n, err := strconv.ParseInt(f[15], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// flushesPerOp creates and removes n devices and returns the disk flushes
// per create and per remove (the pool's metadata commits included: the
// loop files live on the same disk).
func flushesPerOp(t *testing.T, o Options, n int) (create, remove float64) {
	t.Helper()
	p, root := newVMPool(t, o)
	defer p.Close()
	ctx := context.Background()
	must(t, p.Create(ctx, "warm", "", CreateOptions{}))
	must(t, p.Remove(ctx, "warm"))
	unix.Sync()
	f0 := diskFlushes(t, root)
	for i := range n {
		must(t, p.Create(ctx, fmt.Sprintf("d%d", i), "", CreateOptions{}))
	}
	f1 := diskFlushes(t, root)
	for i := range n {
		must(t, p.Remove(ctx, fmt.Sprintf("d%d", i)))
	}
	f2 := diskFlushes(t, root)
	return float64(f1-f0) / float64(n), float64(f2-f1) / float64(n)
}

// TestFlushesPerCreateAndRemove reports the disk flushes a create and a
// remove cost (FLUSHES lines; the registry's own share is asserted by
// TestTheRegistryFlushesOncePerCreateAndRemove).
func TestFlushesPerCreateAndRemove(t *testing.T) {
	for _, c := range []struct {
		name string
		o    Options
	}{
		{"discards off", Options{DataSize: GiB, MetadataSize: 64 * MiB, BaseSize: 256 * MiB, NoDiscard: true}},
		{"discards on (the default)", smallOptions()},
	} {
		create, remove := flushesPerOp(t, c.o, 20)
		fmt.Printf("FLUSHES %s: %.2f disk flushes per create, %.2f per remove\n", c.name, create, remove)
	}
}

//go:build vm

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/dm"
	"github.com/thinctl/thinctl/internal/testenv"
	"github.com/thinctl/thinctl/loopback"
)

// newOperatorAt is newOperator with the pool's root in dir. A pool a
// failed test left broken (pool destroy refuses a read-only pool with a
// mounted device) is torn down by force after destroy, so that the host
// filesystem can be unmounted and later tests see no device of it.
func newOperatorAt(t *testing.T, dir string) *operator {
	t.Helper()
	t.Cleanup(func() {
		var st unix.Stat_t
		if unix.Stat(dir, &st) != nil {
			return
		}
		prefix := fmt.Sprintf("thinctl-%d:%d-%d-", unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino)
		for _, m := range []string{"mnt"} {
			ents, _ := os.ReadDir(filepath.Join(dir, m))
			for _, e := range ents {
				_ = unix.Unmount(filepath.Join(dir, m, e.Name()), unix.MNT_DETACH)
			}
		}
		var pools []string
		for name := range dmTable(t) {
			switch {
			case !strings.HasPrefix(name, prefix):
			case strings.HasSuffix(name, "-pool"):
				pools = append(pools, name)
			default:
				_ = exec.Command("dmsetup", "remove", "--force", name).Run()
			}
		}
		for _, name := range pools {
			t.Logf("removing %s, which the test left", name)
			_ = exec.Command("dmsetup", "remove", "--force", name).Run()
		}
		files, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
		for _, f := range files {
			if b, err := os.ReadFile(f); err == nil && strings.HasPrefix(strings.TrimSpace(string(b)), dir) {
				_ = loopback.Detach(context.Background(), "/dev/"+filepath.Base(filepath.Dir(filepath.Dir(f))))
			}
		}
	})
	o := newOperator(t)
	o.root = dir
	return o
}

// fillFS allocates every free block of the filesystem holding dir to a
// file and returns a function that removes it again.
func fillFS(t *testing.T, dir string) func() {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var off int64
	for chunk := int64(64 << 20); chunk >= 4096; {
		if err := unix.Fallocate(int(f.Fd()), 0, off, chunk); err != nil {
			chunk /= 2
			continue
		}
		off += chunk
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	t.Logf("filled %s: %d MiB in the filler, %d blocks left", dir, off>>20, st.Bfree)
	return func() {
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
	}
}

// punchZeroBlocks deallocates every all-zero 4 KiB block of file: the
// content stays the same, but writing there needs new space from its
// filesystem again (a sparse metadata file, as pool init made before it
// allocated them fully).
func punchZeroBlocks(t *testing.T, file string) {
	t.Helper()
	f, err := os.OpenFile(file, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf, zero := make([]byte, 4096), make([]byte, 4096)
	for off := int64(0); ; off += 4096 {
		n, err := f.ReadAt(buf, off)
		if n < 4096 || err != nil {
			break
		}
		if bytes.Equal(buf, zero) {
			if err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, 4096); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// allocate allocates every block of file (its content unchanged).
func allocate(t *testing.T, file string) {
	t.Helper()
	f, err := os.OpenFile(file, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	if err := unix.Fallocate(int(f.Fd()), 0, 0, fi.Size()); err != nil {
		t.Fatal(err)
	}
}

// writeBefore writes n random bytes to name under dir, synced, and
// returns them.
func writeBefore(t *testing.T, dir, name string, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return b
}

// readBack asserts that file under dir holds want, byte for byte.
func readBack(t *testing.T, dir, name string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatalf("read back %s: %v", name, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s read back %d bytes that differ from the %d written before the fault", name, len(got), len(want))
	}
}

// checkFails asserts check exits 1 naming kind and returns its hint.
func (o *operator) checkFails(kind string) string {
	o.t.Helper()
	r := o.run("check")
	if r.code != 1 || !strings.Contains(r.stdout, kind) {
		o.t.Fatalf("check: exit %d, want 1 naming %s\nstdout:\n%s\nstderr:\n%s", r.code, kind, r.stdout, r.stderr)
	}
	return r.stderr
}

// followHints runs check and, while it fails, the thinctl command its
// hint names (pool repair, fsck ID), as an operator following it would,
// until check exits 0; it returns the commands it ran.
func (o *operator) followHints(max int) []string {
	o.t.Helper()
	var ran []string
	cmdRE := regexp.MustCompile(`thinctl (pool repair|fsck [A-Za-z0-9_.-]+)`)
	for i := 0; ; i++ {
		r := o.run("check")
		if r.code == 0 {
			return ran
		}
		m := cmdRE.FindStringSubmatch(r.stderr)
		if m == nil || i == max {
			o.t.Fatalf("check: exit %d after %v; its hint names no command thinctl runs\nstdout:\n%s\nstderr:\n%s", r.code, ran, r.stdout, r.stderr)
		}
		o.must(strings.Fields(m[1])...)
		ran = append(ran, m[1])
	}
}

// thinDumpIDs runs thin_dump (the test's oracle, never the product's
// recovery) on the metadata of the pool while it is down.
func thinDumpIDs(t *testing.T, meta string) []uint32 {
	t.Helper()
	out, err := exec.Command("thin_dump", meta).CombinedOutput()
	if err != nil {
		t.Fatalf("thin_dump %s: %v\n%s", meta, err, out)
	}
	var ids []uint32
	for _, m := range regexp.MustCompile(`<device dev_id="(\d+)"`).FindAllStringSubmatch(string(out), -1) {
		n, _ := strconv.ParseUint(m[1], 10, 32)
		ids = append(ids, uint32(n))
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// assertRegistryIsThePool takes the pool down, compares the registry's
// thin ids (and the base device's) with thin_dump of the metadata pool.json
// names, and brings it up again.
func (o *operator) assertRegistryIsThePool() {
	o.t.Helper()
	testenv.RequireTool(o.t, "thin_dump")
	var devs []deviceInfo
	o.decode(&devs, "list")
	var cfg struct {
		MetadataFile   string `json:"metadata_file"`
		MetadataDevice string `json:"metadata_device"`
		BaseDeviceID   uint32 `json:"base_device_id"`
	}
	b, err := os.ReadFile(filepath.Join(o.root, "devicemapper", "pool.json"))
	if err != nil || json.Unmarshal(b, &cfg) != nil {
		o.t.Fatalf("pool.json: %v\n%s", err, b)
	}
	want := []uint32{cfg.BaseDeviceID}
	for _, d := range devs {
		want = append(want, d.DeviceID)
	}
	sort.Slice(want, func(i, j int) bool { return want[i] < want[j] })
	for _, d := range devs {
		o.run("unmount", d.ID)
	}
	o.must("pool", "down")
	meta := cfg.MetadataDevice
	if cfg.MetadataFile != "" {
		meta = filepath.Join(o.root, "devicemapper", cfg.MetadataFile)
	}
	got := thinDumpIDs(o.t, meta)
	o.must("pool", "up")
	if fmt.Sprint(got) != fmt.Sprint(want) {
		o.t.Fatalf("thin_dump of %s has thin ids %v; the registry (and base) %v", meta, got, want)
	}
	o.must("check")
}

// faultyLinear is a device-mapper device over dev that a test switches
// between a linear table (working) and an error table (every I/O fails),
// written with the project's dm package.
type faultyLinear struct {
	t       *testing.T
	c       *dm.Client
	name    string
	under   string
	sectors uint64
}

func newFaultyLinear(t *testing.T, name, under string, size uint64) *faultyLinear {
	t.Helper()
	c, err := dm.Default()
	if err != nil {
		t.Fatal(err)
	}
	f := &faultyLinear{t: t, c: c, name: name, under: under, sectors: size / 512}
	if _, err := c.Create(name, dm.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Remove(context.Background(), name, dm.RemoveOptions{Retries: -1}) })
	f.set(true)
	return f
}

// set loads the linear (ok) or error table and makes it live.
func (f *faultyLinear) set(ok bool) {
	f.t.Helper()
	tgt := dm.Target{Start: 0, Length: f.sectors, Type: "error"}
	if ok {
		tgt = dm.Target{Start: 0, Length: f.sectors, Type: "linear", Params: f.under + " 0"}
	}
	if err := f.c.LoadTable(f.name, []dm.Target{tgt}, dm.LoadOptions{}); err != nil {
		f.t.Fatal(err)
	}
	if err := f.c.Resume(context.Background(), f.name); err != nil {
		f.t.Fatal(err)
	}
}

func (f *faultyLinear) path() string { return "/dev/mapper/" + f.name }

// loopDevice binds a new file of size bytes to a loop device.
func loopDevice(t *testing.T, size int64) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "backing")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(file, size); err != nil {
		t.Fatal(err)
	}
	li, err := loopback.Attach(context.Background(), file, loopback.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = loopback.Detach(context.Background(), li.Path) })
	return li.Path
}

// devicePool makes a pool on a data and a metadata device, each a
// faultyLinear over a loop device.
func devicePool(t *testing.T, o *operator, tag string) (data, meta *faultyLinear) {
	t.Helper()
	data = newFaultyLinear(t, "tcfault-"+tag+"-data", loopDevice(t, 128<<20), 128<<20)
	meta = newFaultyLinear(t, "tcfault-"+tag+"-meta", loopDevice(t, 8<<20), 8<<20)
	o.must("pool", "init", "--data-dev", data.path(), "--metadata-dev", meta.path(), "--base-size", "32M", "--min-free-space", "0")
	t.Cleanup(func() { o.run("pool", "destroy", "--force") }) // before the devices go
	return data, meta
}

//go:build vm

package thinpool

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/fs"
	"github.com/thinctl/thinctl/internal/testenv"
	"github.com/thinctl/thinctl/thinpool/internal/dmname"
	"github.com/thinctl/thinctl/thinpool/internal/thintools"
	"github.com/thinctl/thinctl/thinpool/internal/vmtest"
)

// smallOptions keeps the emulated guest fast: a 1 GiB sparse data file,
// 64 MiB of metadata and a 256 MiB base device.
func smallOptions() Options {
	return Options{DataSize: GiB, MetadataSize: 64 * MiB, BaseSize: 256 * MiB}
}

// newVMPool initializes a pool in a fresh root and, when the test ends,
// unmounts its devices, takes it down and runs thin_check on its metadata.
func newVMPool(t *testing.T, o Options) (*Pool, string) {
	t.Helper()
	testenv.RequireDeviceMapper(t)
	testenv.RequireTool(t, "mkfs."+string(orDefault(o.Filesystem)))
	root := t.TempDir()
	p, err := Init(context.Background(), root, o)
	if err != nil {
		t.Fatalf("Init: %v", err)
	}
	t.Cleanup(func() { tearDown(t, root) })
	return p, root
}

func orDefault(t fs.Type) fs.Type {
	if t == "" {
		return fs.Ext4
	}
	return t
}

// tearDown brings the pool of root down from a fresh Pool value (whatever
// the test left mounted is unmounted) and checks its metadata.
func tearDown(t *testing.T, root string) {
	t.Helper()
	if !Exists(root) {
		return // destroyed by the test
	}
	p, err := Open(context.Background(), root, OpenOptions{})
	if err != nil {
		t.Errorf("teardown Open: %v", err)
		return
	}
	defer p.Close()
	devs, err := p.Devices()
	if err != nil {
		t.Errorf("teardown Devices: %v", err)
	}
	for _, d := range devs {
		if d.Mounted {
			if err := p.releaseAll(context.Background(), d.ID); err != nil {
				t.Errorf("teardown unmount %s: %v", d.ID, err)
			}
		}
	}
	if err := p.Down(context.Background()); err != nil {
		t.Errorf("teardown Down: %v", err)
		return
	}
	if p.cfg.MetadataFile != "" {
		thinCheck(t, p.metaFilePath())
	}
}

// thinCheck runs thin_check on a metadata file of a pool that is down.
func thinCheck(t *testing.T, meta string) { vmtest.ThinCheck(t, meta) }

// thinDumpIDs lists the thin ids in a metadata file of a pool that is down.
func thinDumpIDs(t *testing.T, meta string) []uint32 {
	t.Helper()
	tool := testenv.RequireTool(t, "thin_dump")
	out, err := exec.Command(tool, meta).Output()
	if err != nil {
		t.Fatalf("thin_dump %s: %v", meta, err)
	}
	ids, err := thintools.ParseDumpDeviceIDs(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// dmsetup runs dmsetup as an independent oracle.
func dmsetup(t *testing.T, args ...string) (string, error) { return vmtest.Dmsetup(t, args...) }

func mustDmsetup(t *testing.T, args ...string) string { return vmtest.MustDmsetup(t, args...) }

func must(t *testing.T, err error) {
	t.Helper()
	vmtest.Must(t, err)
}

func mustMount(t *testing.T, p *Pool, id string) string {
	t.Helper()
	dir, err := p.Mount(context.Background(), id, MountOptions{})
	if err != nil {
		t.Fatalf("Mount(%s): %v", id, err)
	}
	return dir
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	must(t, os.WriteFile(path, []byte(content), 0o644))
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return string(b)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// writeRandom writes n bytes of random data to path and fsyncs.
func writeRandom(path string, n int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := io.CopyN(f, rand.Reader, n); err != nil {
		return err
	}
	return f.Sync()
}

// allocated returns the bytes a file occupies on disk.
func allocated(t *testing.T, path string) int64 {
	t.Helper()
	var st unix.Stat_t
	must(t, unix.Stat(path, &st))
	return st.Blocks * 512
}

// poolTableLength reads the pool's table length (sectors) with dmsetup.
func poolTableLength(t *testing.T, name string) string {
	t.Helper()
	f := strings.Fields(mustDmsetup(t, "table", name))
	if len(f) < 3 || f[2] != "thin-pool" {
		t.Fatalf("dmsetup table %s: %v", name, f)
	}
	return f[1]
}

func isErr(err, target error) bool { return errors.Is(err, target) }

var _ = filepath.Join

func statMode(t *testing.T, path string) uint32 {
	t.Helper()
	var st unix.Stat_t
	must(t, unix.Stat(path, &st))
	return st.Mode & 0o7777
}

// createActive creates device id (without a parent) in p and activates it;
// it returns the device's path and its device-mapper name.
func createActive(t *testing.T, p *Pool, id string) (path, name string) {
	t.Helper()
	ctx := context.Background()
	must(t, p.Create(ctx, id, "", CreateOptions{}))
	path, err := p.Activate(ctx, id)
	must(t, err)
	return path, dmname.Thin(p.cfg.Key, mustDeviceID(t, p, id))
}

// udevOnly skips a test outside the VM boot with udev running.
func udevOnly(t *testing.T) {
	t.Helper()
	if os.Getenv("THINCTL_VM_MODE") != "udev" {
		t.Skip("udev mode only")
	}
}

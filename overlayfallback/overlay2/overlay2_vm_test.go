//go:build vm

package overlay2

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/driver"
	"github.com/thinctl/thinctl/internal/testenv"
)

// The whole package's host tests run in the guest too (the conformance
// suite on the guest's ext4 scratch disk, and on xfs with prjquota, whose
// quota case the build machines' kernel cannot run). These add what only
// the real kernel can show.

// xfsImage makes and loop-mounts an xfs filesystem with mkfs args and
// mount options, returning the mount point.
func xfsImage(t *testing.T, mkfsArgs []string, mountOpts string) string {
	t.Helper()
	testenv.RequireRoot(t)
	mkfs := testenv.RequireTool(t, "mkfs.xfs")
	img := testenv.SparseFile(t, "xfs.img", 512<<20)
	if out, err := exec.Command(mkfs, append(append([]string{"-q", "-f"}, mkfsArgs...), img)...).CombinedOutput(); err != nil {
		t.Skipf("mkfs.xfs %v: %v: %s", mkfsArgs, err, out)
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-o", "loop,"+mountOpts, img, mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount -o loop,%s: %v: %s", mountOpts, err, out)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	return mnt
}

func TestVMStatusOnTheDebianKernel(t *testing.T) {
	d := newTestDriver(t)
	for _, kv := range d.Status() {
		t.Logf("%s: %s", kv.Key, kv.Value)
	}
	for _, p := range []string{"index", "redirect_dir", "metacopy"} {
		v, ok := kernelParam(p)
		t.Logf("overlay parameter %s present=%v value=%v", p, ok, v)
	}
	if _, ok := kernelParam("index"); ok && !strings.Contains(strings.Join(d.extraOptions(""), ","), "index=off") {
		t.Error("the kernel has the index parameter but index=off is not passed")
	}
}

func TestVMXfsWithoutFtypeIsRefusedWithAHint(t *testing.T) {
	mnt := xfsImage(t, []string{"-m", "crc=0", "-n", "ftype=0"}, "rw")
	_, err := New(filepath.Join(mnt, "overlay2"), driver.Options{})
	if !errors.Is(err, driver.ErrNotSupported) || !strings.Contains(err.Error(), "ftype=1") {
		t.Fatalf("New on xfs ftype=0 = %v, want ErrNotSupported with the ftype=1 hint", err)
	}
	t.Logf("refused as expected: %v", err)
}

func TestVMProjectQuotaIsSetOnTheLayerAndReadBackByXfsIo(t *testing.T) {
	mnt := xfsImage(t, []string{"-n", "ftype=1"}, "prjquota")
	xfsIO := testenv.RequireTool(t, "xfs_io")
	d, err := New(filepath.Join(mnt, "overlay2"), driver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Cleanup(t.Context())
	if d.quota == nil {
		t.Fatalf("no quota on xfs with prjquota: %v", d.quotaErr)
	}
	must(t, d.CreateReadWrite(t.Context(), "q1", "", &driver.CreateOpts{StorageOpt: map[string]string{"size": "20M"}}))
	must(t, d.CreateReadWrite(t.Context(), "q2", "", &driver.CreateOpts{StorageOpt: map[string]string{"size": "30M"}}))
	ids := map[string]string{}
	for _, id := range []string{"q1", "q2"} {
		out, err := exec.Command(xfsIO, "-r", "-c", "lsproj", d.dir(id)).CombinedOutput()
		if err != nil {
			t.Fatalf("xfs_io lsproj: %v: %s", err, out)
		}
		ids[id] = strings.TrimSpace(string(out))
		if !strings.Contains(ids[id], "projid =") || strings.HasSuffix(ids[id], "= 0") {
			t.Errorf("xfs_io lsproj %s: %q, want a non-zero project id", id, out)
		}
		limit, err := d.quota.limit(d.dir(id))
		must(t, err)
		t.Logf("%s: %s, hard limit %d bytes", id, ids[id], limit)
	}
	if ids["q1"] == ids["q2"] {
		t.Errorf("both layers share %s", ids["q1"])
	}
	if l, _ := d.quota.limit(d.dir("q1")); l != 20<<20 {
		t.Errorf("q1 limit %d, want %d", l, 20<<20)
	}
	// A second driver on the same home must not reuse the ids.
	d2, err := New(d.home, driver.Options{})
	must(t, err)
	must(t, d2.CreateReadWrite(t.Context(), "q3", "", &driver.CreateOpts{StorageOpt: map[string]string{"size": "10M"}}))
	out, _ := exec.Command(xfsIO, "-r", "-c", "lsproj", d.dir("q3")).CombinedOutput()
	if s := strings.TrimSpace(string(out)); s == ids["q1"] || s == ids["q2"] {
		t.Errorf("q3 reuses %s", s)
	}
}

func TestVMDeepChainMountTiming(t *testing.T) {
	d := newTestDriver(t)
	parent := ""
	for i := 0; i < 129; i++ {
		id := fmt.Sprintf("%03d%s", i, strings.Repeat("c", 61))
		must(t, d.Create(t.Context(), id, parent, nil))
		parent = id
	}
	lower, err := d.readLower(parent)
	must(t, err)
	spec, err := buildMountData(d.home, parent, lower, d.extraOptions(""))
	must(t, err)
	start := time.Now()
	p, err := d.Get(t.Context(), parent, "")
	must(t, err)
	took := time.Since(start)
	if _, err := os.Stat(filepath.Join(p, ".")); err != nil {
		t.Fatal(err)
	}
	must(t, d.Put(t.Context(), parent))
	t.Logf("mounting a 128-deep lower chain (relative=%v, %d bytes of options) took %v", spec.dir != "", len(spec.data), took)
}

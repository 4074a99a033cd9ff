package overlay2

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/driver"
	"github.com/thinctl/thinctl/driver/drivertest"
	"github.com/thinctl/thinctl/fs"
)

// notOnThisHost stands in for the devicemapper backend, which this test
// binary does not link: it reports what a host without device-mapper
// reports.
type notOnThisHost struct{}

func (notOnThisHost) Probe(string) (string, error) {
	return "", errors.Wrap(driver.ErrNotSupported, "device-mapper is not available (no /dev/mapper/control)")
}
func (notOnThisHost) Existing(string) (string, bool) { return "", false }
func (notOnThisHost) Open(context.Context, string, driver.Options) (driver.Driver, error) {
	return nil, driver.ErrNotSupported
}
func (notOnThisHost) Init(context.Context, string, driver.Options) (driver.Driver, error) {
	return nil, errors.Wrap(driver.ErrNotSupported, "device-mapper is not available (no /dev/mapper/control)")
}

func init() { driver.Register("devicemapper", notOnThisHost{}) }

func TestAutoPicksOverlay2WithAReasonOnAHostWithoutDeviceMapper(t *testing.T) {
	newTestDriver(t) // skips when overlay2 cannot run here
	root := t.TempDir()
	d, ch, err := driver.Select(t.Context(), root, "auto", driver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Cleanup(t.Context())
	t.Logf("auto chose %s: %s", ch.Name, ch.Reason)
	if ch.Name != Name || d.String() != Name || ch.Home != filepath.Join(root, Name) {
		t.Fatalf("auto chose %s in %s, want overlay2 in %s/overlay2", ch.Name, ch.Home, root)
	}
	want := "devicemapper unavailable: device-mapper is not available (no /dev/mapper/control)"
	if ch.Reason != want {
		t.Errorf("reason %q, want %q", ch.Reason, want)
	}
	if st, err := os.Stat(ch.Home); err != nil || !st.IsDir() {
		t.Fatalf("Select on a fresh root made no home: %v", err)
	}
	// From now on auto keeps overlay2 and says so.
	ch, err = driver.Choose(root, "auto")
	if err != nil || ch.Reason != ch.Home+" already exists" || !ch.Initialized {
		t.Errorf("second Choose: %+v, %v", ch, err)
	}
	if _, _, err := driver.Select(t.Context(), t.TempDir(), "devicemapper", driver.Options{}); !errors.Is(err, driver.ErrNotSupported) {
		t.Errorf("explicit devicemapper on this host = %v, want ErrNotSupported", err)
	}
}

func TestExistingSeesOnlyTheHomeUnderTheRoot(t *testing.T) {
	root := t.TempDir()
	if _, ok := (Backend{}).Existing(root); ok {
		t.Error("an empty root holds an overlay2 home")
	}
	os.MkdirAll(filepath.Join(root, "other"), 0o700)
	if _, ok := (Backend{}).Existing(root); ok {
		t.Error("a root with another directory holds an overlay2 home")
	}
	os.MkdirAll(filepath.Join(root, Name), 0o700)
	if desc, ok := (Backend{}).Existing(root); !ok || desc != filepath.Join(root, Name)+" already exists" {
		t.Errorf("a root with overlay2/ = %q, %v", desc, ok)
	}
}

func TestLayoutOnDisk(t *testing.T) {
	d := newTestDriver(t)
	must(t, d.Create(t.Context(), "base", "", nil))
	must(t, d.CreateReadWrite(t.Context(), "rw", "base", nil))
	for _, p := range []string{"l", "base/diff", "base/link", "base/committed", "rw/diff", "rw/link", "rw/lower", "rw/work"} {
		if _, err := os.Lstat(filepath.Join(d.home, p)); err != nil {
			t.Errorf("%s missing: %v", p, err)
		}
	}
	for _, p := range []string{"base/lower", "base/work", "rw/committed"} {
		if _, err := os.Lstat(filepath.Join(d.home, p)); err == nil {
			t.Errorf("%s should not exist", p)
		}
	}
	link, err := d.readLink("base")
	must(t, err)
	target, err := os.Readlink(filepath.Join(d.home, "l", link))
	if err != nil || target != "../base/diff" {
		t.Errorf("l/%s -> %q (%v), want ../base/diff", link, target, err)
	}
	lower, err := os.ReadFile(filepath.Join(d.home, "rw/lower"))
	if err != nil || string(lower) != "l/"+link {
		t.Errorf("rw/lower = %q (%v), want l/%s", lower, err, link)
	}
	md, err := d.Metadata("rw")
	must(t, err)
	want := map[string]string{
		"LowerDir":  filepath.Join(d.home, "base/diff"),
		"UpperDir":  filepath.Join(d.home, "rw/diff"),
		"WorkDir":   filepath.Join(d.home, "rw/work"),
		"MergedDir": filepath.Join(d.home, "rw/merged"),
	}
	if fmt.Sprint(md) != fmt.Sprint(want) {
		t.Errorf("Metadata(rw) = %v, want %v", md, want)
	}
	st := d.Status()
	keys := []string{}
	for _, kv := range st {
		keys = append(keys, kv.Key+"="+kv.Value)
	}
	got := strings.Join(keys, " ")
	if !strings.Contains(got, "Supports d_type=true") || !strings.Contains(got, "Layers=2") || !strings.HasPrefix(got, "Backing Filesystem=") {
		t.Errorf("Status = %s", got)
	}
}

func TestLostLinksAreRebuiltByNew(t *testing.T) {
	d := newTestDriver(t)
	must(t, d.Create(t.Context(), "base", "", nil))
	must(t, d.CreateReadWrite(t.Context(), "rw", "base", nil))
	p, err := d.Get(t.Context(), "base", "")
	must(t, err)
	must(t, os.WriteFile(filepath.Join(p, "f"), []byte("kept"), 0o644))
	must(t, d.Put(t.Context(), "base"))
	link, err := d.readLink("base")
	must(t, err)
	must(t, os.RemoveAll(filepath.Join(d.home, "l")))
	if _, err := d.Get(t.Context(), "rw", ""); err == nil {
		d.Put(t.Context(), "rw")
		t.Fatal("mounting with the l/ links gone worked; the test proves nothing")
	}
	d2, err := New(d.home, driver.Options{})
	must(t, err)
	if target, err := os.Readlink(filepath.Join(d.home, "l", link)); err != nil || target != "../base/diff" {
		t.Fatalf("l/%s after New: %q, %v", link, target, err)
	}
	p, err = d2.Get(t.Context(), "rw", "")
	must(t, err)
	defer d2.Put(t.Context(), "rw")
	if b, err := os.ReadFile(filepath.Join(p, "f")); err != nil || string(b) != "kept" {
		t.Errorf("rw sees f as %q (%v)", b, err)
	}
}

func TestAMountFromAnotherDriverInstanceIsAdoptedNotDoubled(t *testing.T) {
	d := newTestDriver(t)
	must(t, d.Create(t.Context(), "base", "", nil))
	must(t, d.CreateReadWrite(t.Context(), "rw", "base", nil))
	p, err := d.Get(t.Context(), "rw", "")
	must(t, err)
	other, err := New(d.home, driver.Options{})
	must(t, err)
	p2, err := other.Get(t.Context(), "rw", "")
	must(t, err)
	if p != p2 {
		t.Fatalf("paths %s and %s", p, p2)
	}
	if n := countMounts(t, p); n != 1 {
		t.Errorf("%d mounts at %s, want 1", n, p)
	}
	must(t, other.Put(t.Context(), "rw"))
	if mounted, _ := fs.IsMounted(p); mounted {
		t.Error("the adopting instance's last Put left the layer mounted")
	}
	must(t, d.Put(t.Context(), "rw"))
}

func TestRemoveUnmountsALayerInUseAndDeletesIt(t *testing.T) {
	d := newTestDriver(t)
	must(t, d.Create(t.Context(), "base", "", nil))
	must(t, d.CreateReadWrite(t.Context(), "rw", "base", nil))
	p, err := d.Get(t.Context(), "rw", "")
	must(t, err)
	if err := d.Remove(t.Context(), "base"); !errors.Is(err, driver.ErrHasChildren) {
		t.Fatalf("Remove of a parent = %v, want ErrHasChildren", err)
	}
	must(t, d.Remove(t.Context(), "rw"))
	if mounted, _ := fs.IsMounted(p); mounted {
		t.Fatal("Remove left the layer mounted")
	}
	if _, err := os.Lstat(filepath.Join(d.home, "rw")); !os.IsNotExist(err) {
		t.Errorf("layer directory still there: %v", err)
	}
	ents, _ := os.ReadDir(filepath.Join(d.home, "l"))
	if len(ents) != 1 {
		t.Errorf("l/ holds %d links after removing rw, want base's only", len(ents))
	}
	if _, err := d.Get(t.Context(), "rw", ""); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("Get after Remove = %v, want ErrNotFound", err)
	}
}

func countMounts(t *testing.T, p string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	must(t, err)
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == p {
			n++
		}
	}
	return n
}

func TestADeepChainIsMountedWithRelativePaths(t *testing.T) {
	d := newTestDriver(t)
	const layers = 129 // a lower chain of 128 layers
	parent := ""
	for i := 0; i < layers; i++ {
		id := fmt.Sprintf("%03d%s", i, strings.Repeat("f", 61)) // 64 characters, like Docker ids
		must(t, d.Create(t.Context(), id, parent, nil))
		if i == 0 {
			p, err := d.Get(t.Context(), id, "")
			must(t, err)
			must(t, os.WriteFile(filepath.Join(p, "bottom"), []byte("b"), 0o644))
			must(t, d.Put(t.Context(), id))
		}
		parent = id
	}
	lower, err := d.readLower(parent)
	must(t, err)
	spec, err := buildMountData(d.home, parent, lower, d.extraOptions(""))
	must(t, err)
	if spec.dir == "" {
		t.Fatalf("a %d-layer chain under %s fit with absolute paths; the relative mount is not exercised", layers, d.home)
	}
	p, err := d.Get(t.Context(), parent, "")
	must(t, err)
	defer d.Put(t.Context(), parent)
	if b, err := os.ReadFile(filepath.Join(p, "bottom")); err != nil || string(b) != "b" {
		t.Errorf("top of %d layers reads bottom as %q (%v)", layers, b, err)
	}
	// No thread of this process stays in the home (the main thread, if the
	// mount ran there, is parked by Go, not ended).
	cwds, _ := filepath.Glob("/proc/self/task/*/cwd")
	for _, c := range cwds {
		if dir, err := os.Readlink(c); err == nil && (dir == d.home || strings.HasPrefix(dir, d.home+"/")) {
			t.Errorf("%s is %s after the relative mount", c, dir)
		}
	}
}

func TestARelativeMountReportsKernelErrorsAndLeavesTheWorkingDirectory(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	before, err := os.Getwd()
	must(t, err)
	dir := t.TempDir()
	must(t, os.Mkdir(filepath.Join(dir, "m"), 0o755))
	err = mountOverlay(mountSpec{dir: dir, target: "m", data: "lowerdir=l/NOSUCHLINK,upperdir=u,workdir=w"})
	if err == nil || !strings.Contains(err.Error(), "with relative paths") {
		t.Fatalf("err = %v, want the relative mount's own message", err)
	}
	if after, err := os.Getwd(); err != nil || after != before {
		t.Fatalf("the process's working directory moved from %s to %s (%v)", before, after, err)
	}
}

// TestARelativeMountsThreadGoesBackToTheProcesssDirectory runs
// mountRelative on a thread of its own and reads that thread's working
// directory afterwards: when the thread is the main one, Go parks it
// instead of ending it, and a working directory left in the home would
// hold the home's filesystem busy.
func TestARelativeMountsThreadGoesBackToTheProcesssDirectory(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	newTestDriver(t) // skips when overlay cannot be mounted here
	want, err := os.Getwd()
	must(t, err)
	for _, tt := range []struct {
		name    string
		data    string
		mounted bool
	}{
		{"after a mount", "lowerdir=lower,upperdir=upper,workdir=work", true},
		{"after a mount the kernel refused", "lowerdir=l/NOSUCHLINK,upperdir=upper,workdir=work", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, sub := range []string{"lower", "upper", "work", "m"} {
				must(t, os.Mkdir(filepath.Join(dir, sub), 0o755))
			}
			type result struct {
				err error
				cwd string
			}
			done := make(chan result, 1)
			go func() {
				runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
				err := mountRelative(mountSpec{dir: dir, target: "m", data: tt.data})
				cwd, _ := os.Readlink("/proc/thread-self/cwd")
				done <- result{err, cwd}
			}()
			r := <-done
			if r.err == nil {
				defer unix.Unmount(filepath.Join(dir, "m"), 0)
			}
			if (r.err == nil) != tt.mounted {
				t.Fatalf("mountRelative = %v, want mounted %v", r.err, tt.mounted)
			}
			if r.cwd != want {
				t.Errorf("the mounting thread's working directory is %q, want the process's %q", r.cwd, want)
			}
		})
	}
}

func TestSizeOptionOutsideXfsIsNotSupported(t *testing.T) {
	d := newTestDriver(t)
	if d.quota != nil {
		t.Skip("this home supports project quotas")
	}
	err := d.Create(t.Context(), "q", "", &driver.CreateOpts{StorageOpt: map[string]string{"size": "10G"}})
	if !errors.Is(err, driver.ErrNotSupported) || !strings.Contains(err.Error(), "prjquota") {
		t.Errorf("err = %v, want ErrNotSupported naming prjquota", err)
	}
	if d.Exists("q") {
		t.Error("the refused layer exists")
	}
	err = d.Create(t.Context(), "q", "", &driver.CreateOpts{StorageOpt: map[string]string{"sise": "10G"}})
	if err == nil || !strings.Contains(err.Error(), `"sise"`) {
		t.Errorf("unknown option: %v", err)
	}
}

func TestIndexOffIsPassedWhenTheKernelHasTheParameter(t *testing.T) {
	d := newTestDriver(t)
	_, has := kernelParam("index")
	got := strings.Join(d.extraOptions("system_u:object_r:container_file_t:s0"), ",")
	if has != strings.Contains(got, "index=off") {
		t.Errorf("index parameter present=%v but options %q", has, got)
	}
	if !strings.Contains(got, `context="system_u:object_r:container_file_t:s0"`) {
		t.Errorf("mount label missing from %q", got)
	}
}

// TestConformanceOnXfsWithProjectQuotas runs the suite on an xfs image
// mounted with prjquota, so the size case runs rather than skips.
func TestConformanceOnXfsWithProjectQuotas(t *testing.T) {
	if testing.Short() {
		t.Skip("makes and mounts an xfs image")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	mkfs, err := exec.LookPath("mkfs.xfs")
	if err != nil {
		t.Skip("mkfs.xfs not installed")
	}
	img := filepath.Join(t.TempDir(), "xfs.img")
	must(t, os.WriteFile(img, nil, 0o600))
	must(t, os.Truncate(img, 512<<20))
	if out, err := exec.Command(mkfs, "-q", "-n", "ftype=1", img).CombinedOutput(); err != nil {
		t.Skipf("mkfs.xfs: %v: %s", err, out)
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-o", "loop,prjquota", img, mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot loop-mount xfs with prjquota here: %v: %s", err, out)
	}
	t.Cleanup(func() {
		// A loop-backed xfs can be busy for a moment after the last overlay
		// on it goes (seen once in make test); say so if it stays busy.
		var out []byte
		for i := 0; i < 50; i++ {
			if out, err = exec.Command("umount", mnt).CombinedOutput(); err == nil {
				if i > 0 {
					t.Logf("umount %s succeeded at attempt %d", mnt, i+1)
				}
				return
			}
			if i == 0 {
				t.Logf("umount %s: %v: %s\n%s", mnt, err, out, holdersUnder(mnt))
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Errorf("umount %s: %v: %s\n%s", mnt, err, out, holdersUnder(mnt))
	})
	n := 0
	drivertest.Run(t, func(t *testing.T) driver.Driver {
		n++
		d, err := New(filepath.Join(mnt, fmt.Sprint(n)), driver.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if d.quota == nil {
			t.Fatalf("no quota support on xfs with prjquota: %v", d.quotaErr)
		}
		t.Cleanup(func() { d.Cleanup(t.Context()) })
		return d
	})
}

// holdersUnder describes what keeps the filesystem at mnt busy: the mounts
// on or under it and the processes with a file, working directory or root
// there.
func holdersUnder(mnt string) string {
	var b strings.Builder
	if mounts, err := fs.Mounts(); err == nil {
		for _, m := range mounts {
			if m.MountPoint == mnt || strings.HasPrefix(m.MountPoint, mnt+"/") {
				fmt.Fprintf(&b, "mounted: %s (%s from %s)\n", m.MountPoint, m.FSType, m.Source)
			}
		}
	}
	links, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, p := range []string{"cwd", "root"} {
		more, _ := filepath.Glob("/proc/[0-9]*/" + p)
		links = append(links, more...)
	}
	for _, l := range links {
		if target, err := os.Readlink(l); err == nil && (target == mnt || strings.HasPrefix(target, mnt+"/")) {
			fmt.Fprintf(&b, "held: %s -> %s\n", l, target)
		}
	}
	if b.Len() == 0 {
		return "no mount under it and no process holding a file there"
	}
	return b.String()
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestACancelledContextChangesNothing(t *testing.T) {
	d := newTestDriver(t)
	must(t, d.Create(t.Context(), "base", "", nil))
	must(t, d.CreateReadWrite(t.Context(), "app", "base", nil))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	before := countMounts(t, d.mergedDir("app"))
	calls := []struct {
		name string
		call func() error
	}{
		{"Create", func() error { return d.Create(ctx, "new", "", nil) }},
		{"Remove", func() error { return d.Remove(ctx, "app") }},
		{"Get", func() error { _, err := d.Get(ctx, "app", ""); return err }},
		{"Changes", func() error { _, err := d.Changes(ctx, "app", "base"); return err }},
		{"ApplyDiff", func() error { _, err := d.ApplyDiff(ctx, "app", "base", strings.NewReader("")); return err }},
		{"Destroy", func() error { return d.Destroy(ctx, true) }},
	}
	for _, c := range calls {
		if err := c.call(); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context = %v, want context.Canceled", c.name, err)
		}
	}
	if d.Exists("new") || !d.Exists("app") || !d.Exists("base") {
		t.Fatalf("a cancelled call changed the layers: new %v app %v base %v", d.Exists("new"), d.Exists("app"), d.Exists("base"))
	}
	if countMounts(t, d.mergedDir("app")) != before {
		t.Fatal("a cancelled Get mounted the layer")
	}
}

// TestImportingThePackageRunsNothing re-executes this test binary with the
// variable that used to turn an importing program into overlay2's mount
// helper at init: the program runs as itself (its tests run and pass)
// instead of being taken over before main.
func TestImportingThePackageRunsNothing(t *testing.T) {
	if os.Getenv("OVERLAY2_REEXEC_CHILD") == "1" {
		return
	}
	exe, err := os.Executable()
	must(t, err)
	cmd := exec.Command(exe, "-test.run=^TestImportingThePackageRunsNothing$", "-test.v")
	cmd.Env = append(os.Environ(), "OVERLAY2_REEXEC_CHILD=1", "_THINCTL_OVERLAY2_MOUNT_HELPER=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestImportingThePackageRunsNothing") {
		t.Fatalf("the test binary with the old helper variable set: %v\n%s", err, out)
	}
}

func TestGetRefusesALayerWhoseDiffDirectoryIsASymlink(t *testing.T) {
	d := newTestDriver(t)
	must(t, d.Create(t.Context(), "base", "", nil))
	outside := t.TempDir()
	must(t, os.WriteFile(filepath.Join(outside, "secret"), []byte("host"), 0o600))
	diff := filepath.Join(d.home, "base", "diff")
	must(t, os.Remove(diff))
	must(t, os.Symlink(outside, diff))
	p, err := d.Get(t.Context(), "base", "")
	if !errors.Is(err, driver.ErrBadLayerRoot) || !strings.Contains(err.Error(), diff) {
		d.Put(t.Context(), "base")
		t.Fatalf("Get of a layer whose diff is a symlink = %q, %v; want ErrBadLayerRoot naming %s", p, err, diff)
	}
	if b, err := os.ReadFile(filepath.Join(outside, "secret")); err != nil || string(b) != "host" {
		t.Errorf("the outside file holds %q (%v)", b, err)
	}
}

func TestGetRefusesALayerWhoseLowerDiffOrLinkLeadsOutside(t *testing.T) {
	outside := t.TempDir()
	must(t, os.WriteFile(filepath.Join(outside, "secret"), []byte("host"), 0o600))
	for _, c := range []struct {
		name  string
		plant func(d *Driver, link string)
		want  string
	}{
		{"the lower's diff is a symlink", func(d *Driver, link string) {
			diff := filepath.Join(d.home, "base", "diff")
			must(t, os.RemoveAll(diff))
			must(t, os.Symlink(outside, diff))
		}, "is a symlink to"},
		{"the lower link points outside", func(d *Driver, link string) {
			l := filepath.Join(d.home, "l", link)
			must(t, os.Remove(l))
			must(t, os.Symlink(outside, l))
		}, "not at a layer's diff directory"},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := newTestDriver(t)
			must(t, d.Create(t.Context(), "base", "", nil))
			must(t, d.CreateReadWrite(t.Context(), "rw", "base", nil))
			link, err := d.readLink("base")
			must(t, err)
			c.plant(d, link)
			p, err := d.Get(t.Context(), "rw", "")
			if !errors.Is(err, driver.ErrBadLayerRoot) || !strings.Contains(err.Error(), c.want) {
				d.Put(t.Context(), "rw")
				t.Fatalf("Get = %q, %v; want ErrBadLayerRoot saying %q", p, err, c.want)
			}
			if mounted, _ := fs.IsMounted(d.mergedDir("rw")); mounted {
				t.Error("the refused layer is mounted")
			}
			if b, err := os.ReadFile(filepath.Join(outside, "secret")); err != nil || string(b) != "host" {
				t.Errorf("the outside file holds %q (%v)", b, err)
			}
		})
	}
}

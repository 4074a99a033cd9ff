//go:build vm

package main

import (
	"archive/tar"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/thinctl/thinctl/internal/testenv"
	"github.com/thinctl/thinctl/thinpool"
)

// rig is one guest's containerd with thinctl-snapshotter as its proxy
// plugin "thinctl".
type rig struct {
	t          *testing.T
	root       string // thinctl root
	run        string // sockets
	snapSock   string
	ctrdSock   string
	snap       *exec.Cmd
	snapLog    string
	containerd *exec.Cmd
	snapStarts int
	ctrdState  string // containerd's root and state, kept across restarts
	ctrdLog    string // the running containerd's log
	ctrdStarts int
	ctrdEnv    []string // added to containerd's environment
	cri        bool     // containerd's CRI plugin on (off by default)
	snapEnv    []string // added to the snapshotter's environment
	devPrefix  string   // what this pool's devices' /dev/mapper names start with
}

// startSnapshotter starts thinctl-snapshotter (this test binary running
// main) and waits until its socket answers.
func (r *rig) startSnapshotter() time.Duration {
	r.t.Helper()
	r.snapStarts++
	logf, err := os.Create(filepath.Join(r.run, fmt.Sprintf("snapshotter.%d.log", r.snapStarts)))
	if err != nil {
		r.t.Fatal(err)
	}
	r.snapLog = logf.Name()
	cmd := exec.Command(os.Args[0], "--root", r.root, "--address", r.snapSock, "--debug")
	cmd.Env = append(append(os.Environ(), runMainEnv+"=1"), r.snapEnv...)
	cmd.Stdout, cmd.Stderr = logf, logf
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	logf.Close()
	r.snap = cmd
	for time.Since(t0) < 60*time.Second {
		if c, err := net.Dial("unix", r.snapSock); err == nil {
			c.Close()
			return time.Since(t0)
		}
		if cmd.ProcessState != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	b, _ := os.ReadFile(r.snapLog)
	r.t.Fatalf("thinctl-snapshotter did not answer on %s within 60 s:\n%s", r.snapSock, b)
	return 0
}

// stopSnapshotter sends SIGTERM and expects a clean exit.
func (r *rig) stopSnapshotter() {
	r.t.Helper()
	if r.snap == nil {
		return
	}
	r.snap.Process.Signal(syscall.SIGTERM)
	err := r.snap.Wait()
	r.snap = nil
	b, _ := os.ReadFile(r.snapLog)
	if err != nil || !strings.Contains(string(b), "msg=stopped") {
		r.t.Errorf("thinctl-snapshotter on SIGTERM: %v; log:\n%s", err, b)
	}
	if _, err := os.Stat(r.snapSock); err == nil {
		r.t.Errorf("the socket %s is left after a clean stop", r.snapSock)
	}
}

// startContainerd starts containerd with the thinctl proxy plugin and
// extra configuration (TOML appended to the config) and waits until it
// answers.
func (r *rig) startContainerd(bin, extra string) {
	r.t.Helper()
	cfg := filepath.Join(r.run, "containerd.toml")
	if r.ctrdState == "" {
		r.ctrdState = filepath.Join(r.t.TempDir(), "containerd")
	}
	state := r.ctrdState
	r.ctrdStarts++
	disabled := `["io.containerd.grpc.v1.cri"]`
	if r.cri {
		disabled = "[]"
	}
	writeFile(r.t, cfg, fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = %s

[grpc]
  address = %q

# Collect garbage only when asked (ctr images rm --sync, a lease deleted
# with sync): a collection scheduled by the mutations of an import would
# race the test's own steps.
[plugins."io.containerd.gc.v1.scheduler"]
  mutation_threshold = 1000000

[proxy_plugins]
  [proxy_plugins.thinctl]
    type = "snapshot"
    address = %q
%s`, filepath.Join(state, "root"), filepath.Join(r.run, "state"), disabled, r.ctrdSock, r.snapSock, extra))
	logf, err := os.Create(filepath.Join(r.run, fmt.Sprintf("containerd.%d.log", r.ctrdStarts)))
	if err != nil {
		r.t.Fatal(err)
	}
	r.ctrdLog = logf.Name()
	cmd := exec.Command(bin, "--config", cfg)
	cmd.Env = append(os.Environ(), r.ctrdEnv...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	logf.Close()
	r.containerd = cmd
	r.t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if r.t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			r.t.Logf("containerd log:\n%s", tail(string(b), 60))
		}
	})
	for t0 := time.Now(); time.Since(t0) < 60*time.Second; time.Sleep(200 * time.Millisecond) {
		if _, err := r.ctrErr("version"); err == nil {
			return
		}
	}
	b, _ := os.ReadFile(logf.Name())
	r.t.Fatalf("containerd did not answer within 60 s:\n%s", tail(string(b), 60))
}

// ctrErr runs ctr against the rig's containerd.
func (r *rig) ctrErr(args ...string) (string, error) {
	cmd := exec.Command("ctr", append([]string{"--address", r.ctrdSock, "--namespace", "default"}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// ctrT runs ctr against the rig's containerd and fails t when it fails.
func (r *rig) ctrT(t *testing.T, args ...string) string {
	t.Helper()
	out, err := r.ctrErr(args...)
	if err != nil {
		t.Fatalf("ctr %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// records counts the device records in the registry (read from its files
// without the lock, so the running snapshotter is not disturbed).
func (r *rig) records() int {
	recs, _ := testenv.ReadRegistry(r.root)
	return len(recs)
}

// newRig makes a thinctl pool (4 GiB of data, 256 MiB base) and a short
// directory under /run for the sockets; the snapshotter and containerd are
// started by the caller and stopped when the test ends.
func newRig(t *testing.T) *rig {
	t.Helper()
	return newRigWith(t, thinpool.Options{DataSize: 4 * thinpool.GiB, MetadataSize: 64 * thinpool.MiB, BaseSize: 256 * thinpool.MiB})
}

// newRigWith is newRig on a pool made with opts.
func newRigWith(t *testing.T, opts thinpool.Options) *rig {
	t.Helper()
	ctx := context.Background()
	root := t.TempDir()
	p, err := thinpool.Init(ctx, root, opts)
	if err != nil {
		t.Fatal(err)
	}
	devPrefix := "/dev/mapper/" + strings.TrimSuffix(p.Name(), "pool")
	p.Close()
	run, err := os.MkdirTemp("/run", "tcs")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(run) })
	r := &rig{t: t, root: root, run: run, snapSock: filepath.Join(run, "snap.sock"), ctrdSock: filepath.Join(run, "ctrd.sock"), devPrefix: devPrefix}
	t.Cleanup(func() {
		if r.snap != nil {
			r.snap.Process.Kill()
			r.snap.Wait()
		}
		if t.Failed() {
			b, _ := os.ReadFile(r.snapLog)
			t.Logf("last snapshotter log:\n%s", tail(string(b), 60))
		}
	})
	return r
}

// requireNodeBoot skips a test outside the guest boot with udev (a real
// node runs udev; make test boots both) unless -test.run names it, and
// returns containerd's path once it and the other named tools are there.
func requireNodeBoot(t *testing.T, tools ...string) string {
	t.Helper()
	testenv.RequireDeviceMapper(t)
	named := false
	if f := flag.Lookup("test.run"); f != nil {
		named = strings.Contains(f.Value.String(), t.Name())
	}
	if os.Getenv("THINCTL_VM_MODE") == "noudev" && !named {
		t.Skip("runs in the boot with udev, as on a real node (make test boots both); name it with --run to run it here")
	}
	for _, tool := range append([]string{"ctr", "mkfs.ext4"}, tools...) {
		testenv.RequireTool(t, tool)
	}
	return testenv.RequireTool(t, "containerd")
}

func TestRealContainerdThroughTheSnapshotter(t *testing.T) {
	containerd := requireNodeBoot(t)
	r := newRig(t)
	root := r.root
	startup := r.startSnapshotter()
	t.Logf("thinctl-snapshotter answered %v after its start (first start: makes the root device)", startup.Round(time.Millisecond))
	r.startContainerd(containerd, "")
	base := r.records()

	work := t.TempDir()
	layers, tree := featureImage()
	archive := filepath.Join(work, "feature.tar")
	top := writeImageArchive(t, archive, "thinctl.test/feature:latest", layers)

	t.Run("ctr images import unpacks every layer into a thin device", func(t *testing.T) {
		t0 := time.Now()
		out := r.ctrT(t, "images", "import", "--snapshotter", "thinctl", archive)
		t.Logf("import of 3 layers (20 MiB) took %v: %s", time.Since(t0).Round(time.Millisecond), strings.TrimSpace(out))
		if n := r.records() - base; n != 3 {
			t.Fatalf("%d new thin devices after importing 3 layers, want 3", n)
		}
		if out := r.ctrT(t, "snapshots", "--snapshotter", "thinctl", "info", top); !strings.Contains(strings.ToLower(out), `"kind": "committed"`) {
			t.Fatalf("the top layer %s is not a committed snapshot:\n%s", top, out)
		}
	})
	t.Run("the image mounted through a view shows every file byte for byte", func(t *testing.T) {
		// What `ctr images mount` does: a view of the image's top chain
		// id, mounted. (ctr 1.6.20's own images mount reads --snapshotter
		// as a global flag ctr does not have, so it always unpacks onto
		// overlayfs; see docs/containerd.md.)
		mnt := mkdir(t, filepath.Join(work, "mnt"))
		src := mountFromCtr(t, viewKept(t, r, "image-view", "--target", mnt, "image-view", top), true)
		if out := r.ctrT(t, "snapshots", "--snapshotter", "thinctl", "mounts", mnt, "image-view"); mountFromCtr(t, out, true) != src {
			t.Fatalf("ctr snapshots mounts names another device than view did: %s", out)
		}
		mustMount(t, src, mnt, syscall.MS_RDONLY)
		if msrc, typ := mountSource(t, mnt); msrc != src || typ != "ext4" {
			t.Fatalf("%s is mounted from %s (%s); want %s (ext4)", mnt, msrc, typ, src)
		}
		checkTree(t, mnt, tree)
		mustUnmount(t, mnt)
		r.ctrT(t, "snapshots", "--snapshotter", "thinctl", "rm", "image-view")
	})
	t.Run("ctr snapshots prepare, mounts, commit, view, usage and rm", func(t *testing.T) {
		sn := []string{"snapshots", "--snapshotter", "thinctl"}
		r.ctrT(t, append(sn, "prepare", "work-a", top)...)
		dir := filepath.Join(work, "a")
		m := r.ctrT(t, append(sn, "mounts", dir, "work-a")...)
		src := mountFromCtr(t, m, false)
		mustMount(t, src, dir, 0)
		writeFile(t, filepath.Join(dir, "written"), "by the active snapshot\n")
		mustUnmount(t, dir)
		r.ctrT(t, append(sn, "commit", "work-a-done", "work-a")...)
		viewKept(t, r, "work-v", "work-v", "work-a-done")
		vdir := filepath.Join(work, "v")
		vsrc := mountFromCtr(t, r.ctrT(t, append(sn, "mounts", vdir, "work-v")...), true)
		mustMount(t, vsrc, vdir, syscall.MS_RDONLY)
		if b, err := os.ReadFile(filepath.Join(vdir, "written")); err != nil || string(b) != "by the active snapshot\n" {
			t.Errorf("the view reads %q (%v), want the committed file", b, err)
		}
		if b, err := os.ReadFile(filepath.Join(vdir, "etc/hello")); err != nil || string(b) != "hello from layer 3\n" {
			t.Errorf("the view reads etc/hello as %q (%v)", b, err)
		}
		if err := os.WriteFile(filepath.Join(vdir, "nope"), nil, 0o644); err == nil {
			t.Errorf("a write into the view succeeded")
		}
		mustUnmount(t, vdir)
		usage := r.ctrT(t, append(sn, "usage", "work-a-done")...)
		if !regexp.MustCompile(`work-a-done\s+[1-9][0-9.]*\s*[KMG]i?B`).MatchString(usage) {
			t.Errorf("usage of the committed snapshot:\n%s\nwant a size above zero", usage)
		}
		r.ctrT(t, append(sn, "rm", "work-v")...)
		r.ctrT(t, append(sn, "rm", "work-a-done")...)
		if out, err := r.ctrErr(append(sn, "info", "work-a-done")...); err == nil {
			t.Errorf("the removed snapshot is still there:\n%s", out)
		}
		// containerd removes them from the snapshotter in its garbage
		// collection, when its scheduler gets to it; the last subtest
		// checks that every device went.
	})

	many := filepath.Join(work, "many.tar")
	manyLayers := manyLayerImage(5, 2<<20)
	manyTop := writeImageArchive(t, many, "thinctl.test/many:latest", manyLayers)
	t.Run("an import the snapshotter is killed in completes when run again", func(t *testing.T) {
		before := r.records()
		imp := exec.Command("ctr", "--address", r.ctrdSock, "--namespace", "default", "images", "import", "--snapshotter", "thinctl", many)
		var impOut bytes.Buffer
		imp.Stdout, imp.Stderr = &impOut, &impOut
		if err := imp.Start(); err != nil {
			t.Fatal(err)
		}
		for t0 := time.Now(); r.records() < before+2 && time.Since(t0) < 120*time.Second; time.Sleep(20 * time.Millisecond) {
		}
		killedAt := r.records() - before
		r.snap.Process.Kill()
		r.snap.Wait()
		r.snap = nil
		if err := imp.Wait(); err == nil {
			t.Logf("note: the import finished before the kill took effect: %s", impOut.String())
		} else {
			t.Logf("SIGKILL with %d of 5 layers' devices made; the import failed as it should: %v: %s", killedAt, err, lastLine(impOut.String()))
		}
		if killedAt >= 5 {
			t.Fatalf("the import was done (%d devices) before the kill", killedAt)
		}
		t0 := time.Now()
		r.startSnapshotter()
		restarted := time.Since(t0)
		for {
			_, err := r.ctrErr("snapshots", "--snapshotter", "thinctl", "ls")
			if err == nil {
				break
			}
			if time.Since(t0) > 60*time.Second {
				t.Fatalf("containerd could not reach the restarted snapshotter for 60 s: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("after the restart: socket answering in %v, containerd served in %v", restarted.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
		if d := time.Since(t0); d > 20*time.Second {
			t.Errorf("containerd was served again only %v after the restart", d)
		}
		if b, _ := os.ReadFile(r.snapLog); bytes.Contains(b, []byte("level=WARN")) || bytes.Contains(b, []byte("level=ERROR")) {
			t.Logf("restarted snapshotter log:\n%s", b)
		}
		r.ctrT(t, "images", "import", "--snapshotter", "thinctl", many)
		mnt := mkdir(t, filepath.Join(work, "many-mnt"))
		msrc := mountFromCtr(t, viewKept(t, r, "many-view", "--target", mnt, "many-view", manyTop), true)
		mustMount(t, msrc, mnt, syscall.MS_RDONLY)
		defer r.ctrT(t, "snapshots", "--snapshotter", "thinctl", "rm", "many-view")
		defer mustUnmount(t, mnt)
		for i := range manyLayers {
			name := fmt.Sprintf("layers/%02d", i)
			if b, err := os.ReadFile(filepath.Join(mnt, name)); err != nil || !bytes.Equal(b, manyLayers[i][1].data) {
				t.Errorf("%s after the second import: %d bytes, equal %v (%v)", name, len(b), bytes.Equal(b, manyLayers[i][1].data), err)
			}
		}
	})
	t.Run("ctr images rm and containerd's garbage collection free every device", func(t *testing.T) {
		r.ctrT(t, "images", "rm", "--sync", "thinctl.test/feature:latest", "thinctl.test/many:latest")
		// --sync waits for the collection; allow containerd a moment for
		// a collection it scheduled on its own.
		for t0 := time.Now(); r.records() != 1 && time.Since(t0) < 30*time.Second; time.Sleep(200 * time.Millisecond) {
		}
		if n := r.records(); n != 1 {
			out, _ := r.ctrErr("snapshots", "--snapshotter", "thinctl", "ls")
			t.Fatalf("%d device records after removing every image; want only the snapshotter's root device\n%s", n, out)
		}
		if out := r.ctrT(t, "snapshots", "--snapshotter", "thinctl", "ls"); strings.Count(strings.TrimSpace(out), "\n") != 0 {
			t.Fatalf("containerd still lists snapshots:\n%s", out)
		}
	})
	r.stopSnapshotter()
	t.Run("registry, pool metadata (thin_dump) and live devices agree at the end", func(t *testing.T) {
		checkPoolAgrees(t, root, 1)
	})
}

// viewKept runs `ctr snapshots view ARGS...` and labels the view key
// containerd.io/gc.root: ctr snapshots view, unlike prepare and commit, adds
// no root label, so a garbage collection would remove the view while the
// test still uses it. ctr's lease on the view ends when ctr exits, and a
// collection can come between the two commands (seen once in make test); a
// view that vanished so is made again, up to three times. It returns what
// view printed.
func viewKept(t *testing.T, r *rig, key string, args ...string) string {
	t.Helper()
	view := append([]string{"snapshots", "--snapshotter", "thinctl", "view"}, args...)
	for try := 1; ; try++ {
		out := r.ctrT(t, view...)
		lout, err := r.ctrErr("snapshots", "--snapshotter", "thinctl", "label", key, "containerd.io/gc.root=test")
		if err == nil {
			return out
		}
		if _, ierr := r.ctrErr("snapshots", "--snapshotter", "thinctl", "info", key); ierr == nil || try == 3 {
			t.Fatalf("ctr snapshots label %s containerd.io/gc.root=test (try %d): %v\n%s", key, try, err, lout)
		}
		t.Logf("containerd's collector removed view %s before it was labelled (try %d); making it again", key, try)
	}
}

// checkPoolAgrees opens the pool, expects Check to find nothing and wantRecords
// records, takes the pool down and counts the thin devices in its metadata
// with thin_dump: the base device and one per record.
func checkPoolAgrees(t *testing.T, root string, wantRecords int) {
	t.Helper()
	ctx := context.Background()
	p, err := thinpool.Open(ctx, root, thinpool.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	rep, err := p.Check(ctx, thinpool.CheckOptions{})
	if err != nil || !rep.Consistent || len(rep.Problems) > 0 {
		t.Fatalf("Check: consistent %v, problems %+v (%v)", rep.Consistent, rep.Problems, err)
	}
	devs, err := p.Devices()
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) != wantRecords {
		t.Fatalf("%d devices in the registry, want %d: %+v", len(devs), wantRecords, devs)
	}
	for _, d := range devs {
		if d.Deleted {
			t.Errorf("device %s is still marked for deletion", d.ID)
		}
	}
	if err := p.Down(ctx); err != nil {
		t.Fatal(err)
	}
	thinDump := testenv.RequireTool(t, "thin_dump")
	out, err := exec.Command(thinDump, filepath.Join(root, "devicemapper", "metadata")).CombinedOutput()
	if err != nil {
		t.Fatalf("thin_dump: %v\n%s", err, out)
	}
	if n := strings.Count(string(out), "<device dev_id="); n != wantRecords+1 {
		t.Fatalf("thin_dump lists %d thin devices, want %d (the base device and one per record)\n%s", n, wantRecords+1, out)
	}
}

// checkTree compares the tree under dir with want: every path, its type,
// mode and bytes, hard links by inode, and nothing more.
func checkTree(t *testing.T, dir string, want map[string]want) {
	t.Helper()
	seen := map[string]bool{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		w, ok := want[rel]
		if !ok {
			t.Errorf("unexpected %s in the image", rel)
			return nil
		}
		seen[rel] = true
		st, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch w.typ {
		case tar.TypeDir:
			if !st.IsDir() {
				t.Errorf("%s is %v, want a directory", rel, st.Mode())
			}
		case tar.TypeSymlink:
			if l, err := os.Readlink(p); err != nil || l != w.linkname {
				t.Errorf("%s links to %q (%v), want %q", rel, l, err, w.linkname)
			}
			return nil
		case tar.TypeReg:
			b, err := os.ReadFile(p)
			if err != nil || !bytes.Equal(b, w.data) {
				t.Errorf("%s: %d bytes, want %d, equal %v (%v)", rel, len(b), len(w.data), bytes.Equal(b, w.data), err)
			}
		}
		if st.Mode().Perm() != w.mode {
			t.Errorf("%s has mode %v, want %v", rel, st.Mode().Perm(), w.mode)
		}
		if w.sameAs != "" {
			other, err := os.Lstat(filepath.Join(dir, w.sameAs))
			if err != nil || !os.SameFile(st, other) {
				t.Errorf("%s is not a hard link of %s", rel, w.sameAs)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for p := range want {
		if !seen[p] {
			t.Errorf("%s is missing from the image", p)
		}
	}
}

// mountSource returns the source and type of the mount at dir.
func mountSource(t *testing.T, dir string) (string, string) {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 10 || f[4] != dir {
			continue
		}
		for i, x := range f {
			if x == "-" && i+2 < len(f) {
				return f[i+2], f[i+1]
			}
		}
	}
	t.Fatalf("%s is not a mount point", dir)
	return "", ""
}

// mountFromCtr parses `ctr snapshots mounts` ("mount -t ext4 SOURCE DIR
// [-o OPTS]") and returns the source; ro says whether "ro" must be among
// the options.
func mountFromCtr(t *testing.T, out string, ro bool) string {
	t.Helper()
	f := strings.Fields(out)
	if len(f) < 5 || f[0] != "mount" || f[1] != "-t" || f[2] != "ext4" || !strings.HasPrefix(f[3], "/dev/mapper/thinctl-") {
		t.Fatalf("ctr snapshots mounts printed %q; want one ext4 mount of a /dev/mapper thin device", out)
	}
	hasRO := strings.Contains(out, "-o ro") || strings.Contains(out, ",ro")
	if hasRO != ro {
		t.Fatalf("ctr snapshots mounts printed %q; read-only %v, want %v", out, hasRO, ro)
	}
	return f[3]
}

func mustMount(t *testing.T, src, dir string, flags uintptr) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount(src, dir, "ext4", flags, ""); err != nil {
		t.Fatalf("mount %s on %s: %v", src, dir, err)
	}
}

func mustUnmount(t *testing.T, dir string) {
	t.Helper()
	if err := syscall.Unmount(dir, 0); err != nil {
		t.Fatalf("unmount %s: %v", dir, err)
	}
}

func mkdir(t *testing.T, dir string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func lastLine(s string) string { return tail(s, 1) }

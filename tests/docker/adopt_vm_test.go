//go:build vm

package docker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/thinctl/thinctl/dockerdm"
	"github.com/thinctl/thinctl/internal/failpoint"
	"github.com/thinctl/thinctl/thinpool"
)

// dockerTree fingerprints the store without the pool's data and metadata
// files: the files adopt hands to thinctl, whose kernel pool writes them.
func dockerTree(t *testing.T, root string) map[string]string {
	t.Helper()
	fp := fingerprint(t, root, "devicemapper/devicemapper/metadata")
	delete(fp, "devicemapper/devicemapper/data")
	return fp
}

// checkAdopt takes the stopped store's pool over with thinctl docker adopt
// and checks that thinctl then lists, mounts, creates, removes and checks
// Docker's devices, finding the files docker wrote, and that not a byte of
// Docker's files changed. Before that it checks that adopt refuses while a
// device a killed dockerd left mounted is open (nothing changed), and that
// an adopt stopped at any registry write leaves no registry and is finished
// by the next run.
func checkAdopt(t *testing.T, root string, rep *dockerdm.Report, bigSize int, killed bool) {
	t.Helper()
	if _, err := exec.LookPath("thinctl"); err != nil {
		t.Log("no thinctl on the guest's PATH (run.sh --extra-bin bin/thinctl): adopt was not run")
		return
	}
	ctx := context.Background()
	troot := filepath.Join(os.TempDir(), "thinctl-adopt-"+filepath.Base(root))
	before := dockerTree(t, root)
	t0 := time.Now()

	if killed {
		mounts := mountsUnder(root)
		if len(mounts) == 0 {
			t.Log("the killed dockerd left nothing mounted: the open-device refusal was not exercised")
		} else {
			_, errOut, code, _ := thinctl(t, "docker", "adopt", "--docker-root", root, "--root", troot)
			lines := strings.Split(strings.TrimSpace(errOut), "\n")
			if code != 1 || len(lines) != 2 || !strings.Contains(lines[0], "is open") || !strings.HasPrefix(lines[1], "hint: nothing was changed") {
				t.Errorf("adopt with %v mounted: exit %d\n%s", mounts, code, errOut)
			}
			t.Logf("$ thinctl docker adopt --docker-root %s --root %s   # Docker's devices still mounted\n%s(exit %d)", root, troot, errOut, code)
			if _, err := os.Stat(troot); !os.IsNotExist(err) {
				t.Errorf("a refused adopt made %s", troot)
			}
			if out, err := exec.Command("dmsetup", "info", rep.Pool.Name).CombinedOutput(); err != nil {
				t.Errorf("a refused adopt took Docker's pool down: %v %s", err, out)
			}
			for _, m := range mounts {
				if err := syscall.Unmount(m, 0); err != nil {
					t.Fatalf("unmount %s: %v", m, err)
				}
			}
		}
	}

	// Stopped at every registry write in turn: no registry at troot
	// each time, then a run that finishes.
	if !failpoint.Compiled {
		t.Log("not a failpoints build: the interrupted adopts were not run")
	}
	for k := 1; failpoint.Compiled; k++ {
		if err := failpoint.Enable(fmt.Sprintf("%s=panic@%d", failpoint.RegistryBeforeRen, k)); err != nil {
			t.Fatal(err)
		}
		stopped := func() (stopped bool) {
			defer func() {
				if r := recover(); r != nil {
					stopped = true
				}
			}()
			_, err := dockerdm.Adopt(ctx, root, troot, dockerdm.AdoptOptions{})
			if err != nil {
				t.Fatalf("adopt with a failpoint at registry write %d: %v", k, err)
			}
			return false
		}()
		failpoint.Disable()
		if !stopped {
			t.Logf("adopt stopped at each of its %d registry writes left no registry; the run with none armed finished", k-1)
			break
		}
		if thinpool.Exists(troot) {
			t.Fatalf("adopt stopped at registry write %d left a registry", k)
		}
		if _, err := thinpool.Open(ctx, troot, thinpool.OpenOptions{}); !errors.Is(err, thinpool.ErrNotInitialized) {
			t.Fatalf("open after adopt stopped at registry write %d: %v", k, err)
		}
		if k > 200 {
			t.Fatal("adopt never finished")
		}
	}
	if failpoint.Compiled {
		// The run that finished was the library's; start over for the CLI.
		p, err := thinpool.Open(ctx, troot, thinpool.OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Down(ctx); err != nil {
			t.Fatal(err)
		}
		p.Close()
		os.RemoveAll(troot)
	}

	out, errOut, code, _ := thinctl(t, "docker", "adopt", "--docker-root", root, "--root", troot)
	if code != 0 || errOut != "" {
		t.Fatalf("thinctl docker adopt: exit %d\n%s%s", code, out, errOut)
	}
	t.Logf("$ thinctl docker adopt --docker-root %s --root %s\n%s", root, troot, out)
	t.Logf("adopt (with the interrupted runs) took %v", time.Since(t0).Round(time.Millisecond))
	defer func() {
		if _, e, c, _ := thinctl(t, "--root", troot, "pool", "down"); c != 0 {
			t.Errorf("thinctl pool down: %s", e)
		}
	}()
	if !strings.Contains(out, "do not start Docker") {
		t.Errorf("adopt does not say the store is no longer Docker's:\n%s", out)
	}
	_, errOut, code, _ = thinctl(t, "docker", "adopt", "--docker-root", root, "--root", troot)
	if code != 1 || !strings.Contains(errOut, "already") || strings.Count(errOut, "\n") != 2 {
		t.Errorf("a second adopt: exit %d\n%s", code, errOut)
	}
	t.Logf("$ thinctl docker adopt --docker-root %s --root %s   # again\n%s(exit %d)", root, troot, errOut, code)

	// Every layer and container device is in the registry with its hash.
	p, err := thinpool.Open(ctx, troot, thinpool.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	devs, err := p.Devices()
	p.Close()
	if err != nil {
		t.Fatal(err)
	}
	byHash := map[string]thinpool.Device{}
	for _, d := range devs {
		byHash[d.Labels[dockerdm.LabelHash]] = d
	}
	want := map[string]uint32{}
	for _, img := range rep.Images {
		for _, l := range img.LayerReports {
			want[l.CacheID] = *l.DeviceID
		}
	}
	for _, c := range rep.Containers {
		want[c.MountID], want[c.InitID] = *c.RWDevice, *c.InitDevice
	}
	for h, id := range want {
		if d, ok := byHash[h]; !ok || d.DeviceID != id {
			t.Errorf("device %s (thin id %d): registry has %+v", h, id, d)
		}
	}
	if len(devs) != len(want) {
		t.Errorf("registry has %d devices, the store %d", len(devs), len(want))
	}
	// Image a's top layer carries its 1+manyTags tags: as many as fit in
	// the label, and their count.
	for _, d := range devs {
		if d.ID != "image-thinctl_a_1" {
			continue
		}
		tags := strings.Split(d.Labels[dockerdm.LabelTags], ",")
		if tags[0] != "thinctl/a:1" || len(tags) < 20 || len(d.Labels[dockerdm.LabelTags]) > 2048 ||
			d.Labels[dockerdm.LabelTagsTotal] != strconv.Itoa(1+manyTags) {
			t.Errorf("image-thinctl_a_1's tag labels: %d tags in %d bytes, total %q; want a prefix of its %d tags and the count",
				len(tags), len(d.Labels[dockerdm.LabelTags]), d.Labels[dockerdm.LabelTagsTotal], 1+manyTags)
		}
	}

	// thinctl mounts every device; the files docker wrote are there.
	files := map[string]map[string][]byte{
		"image-thinctl_a_1": {"etc/hello": []byte("hello, changed in layer 2\n"), "opq/new": []byte("the only file left in opq\n"),
			"data/big": pattern(bigSize, 1), "three/a/b/c": []byte("layer three\n")},
		"image-thinctl_b_1": {"b/only-in-b": []byte("image b\n"), "etc/hello": []byte("hello from the base layer\n")},
		"image-thinctl_c_1": {"written/note": []byte("written by docker cp into c1\n"), "written/sub/blob": pattern(1<<20, 7)},
		"container-c1":      {"written/note": []byte("written by docker cp into c1\n")},
		"container-c2":      {"etc/note-c2": []byte("written by docker cp into c1\n")},
	}
	gone := map[string][]string{
		"image-thinctl_a_1": {"etc/gone", "opq/old1", "opq/sub"},
		"image-thinctl_b_1": {"data/xattr"},
	}
	sort.Slice(devs, func(i, j int) bool { return devs[i].ID < devs[j].ID })
	for _, d := range devs {
		mp, errOut, code, _ := thinctl(t, "--root", troot, "mount", d.ID)
		mp = strings.TrimSpace(mp)
		if d.ID == "image-thinctl_a_1" {
			hello, _ := os.ReadFile(filepath.Join(mp, "rootfs/etc/hello"))
			t.Logf("$ thinctl --root %s mount %s\n%s\n$ cat %s/rootfs/etc/hello\n%s", troot, d.ID, mp, mp, hello)
		}
		if code != 0 {
			t.Errorf("thinctl mount %s: exit %d %s", d.ID, code, errOut)
			continue
		}
		if _, err := os.Stat(filepath.Join(mp, "rootfs")); err != nil {
			t.Errorf("%s: %v", d.ID, err)
		}
		for name, body := range files[d.ID] {
			if got, err := os.ReadFile(filepath.Join(mp, "rootfs", name)); err != nil || !bytes.Equal(got, body) {
				t.Errorf("%s: %s has %d bytes (%v), want %d", d.ID, name, len(got), err, len(body))
			}
		}
		for _, name := range gone[d.ID] {
			if _, err := os.Lstat(filepath.Join(mp, "rootfs", name)); !os.IsNotExist(err) {
				t.Errorf("%s: %s exists after its whiteout (%v)", d.ID, name, err)
			}
		}
		if _, errOut, code, _ := thinctl(t, "--root", troot, "unmount", d.ID); code != 0 {
			t.Errorf("thinctl unmount %s: %s", d.ID, errOut)
		}
		delete(files, d.ID)
	}
	for id := range files {
		t.Errorf("no device %s was adopted", id)
	}

	// check agrees; create, write, remove work on Docker's devices.
	if out, errOut, code, _ := thinctl(t, "--root", troot, "check"); code != 0 {
		t.Errorf("thinctl check after adopt: exit %d\n%s%s", code, out, errOut)
	} else {
		t.Logf("$ thinctl --root %s check\n%s", troot, out)
	}
	steps := [][]string{
		{"create", "from-a", "--parent", "image-thinctl_a_1"},
		{"mount", "from-a"},
	}
	for _, s := range steps {
		if _, errOut, code, _ := thinctl(t, append([]string{"--root", troot}, s...)...); code != 0 {
			t.Fatalf("thinctl %v: %s", s, errOut)
		}
	}
	mp := filepath.Join(troot, "mnt", "from-a", "rootfs")
	if err := os.WriteFile(filepath.Join(mp, "new-file"), []byte("thinctl wrote this\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(mp, "etc/hello")); string(b) != "hello, changed in layer 2\n" {
		t.Errorf("a snapshot of image-thinctl_a_1 reads etc/hello as %q", b)
	}
	for _, s := range [][]string{{"unmount", "from-a"}, {"remove", "from-a"}, {"remove", "container-c1"}, {"remove", "container-c1-init"}} {
		if _, errOut, code, _ := thinctl(t, append([]string{"--root", troot}, s...)...); code != 0 {
			t.Errorf("thinctl %v: %s", s, errOut)
		}
	}
	if _, errOut, code, _ := thinctl(t, "--root", troot, "remove", "image-thinctl_b_1"); code != 1 || !strings.Contains(errOut, "snapshot") {
		t.Errorf("remove of an image layer a container is built on: exit %d %s", code, errOut)
	}
	out, errOut, code, _ = thinctl(t, "--root", troot, "list")
	if code != 0 || strings.Contains(out, "container-c1 ") || !strings.Contains(out, "container-c2") {
		t.Errorf("thinctl list after the removals: exit %d\n%s%s", code, out, errOut)
	}
	t.Logf("$ thinctl --root %s list\n%s", troot, out)
	if out, errOut, code, _ := thinctl(t, "--root", troot, "check"); code != 0 {
		t.Errorf("thinctl check after the removals: exit %d\n%s%s", code, out, errOut)
	}
	if diff := diffFingerprints(before, dockerTree(t, root)); len(diff) > 0 {
		t.Errorf("adopt or thinctl changed Docker's files:\n%s", strings.Join(diff, "\n"))
	}
}

// mountsUnder lists the mount points under root, deepest first.
func mountsUnder(root string) []string {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	var mps []string
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && strings.HasPrefix(f[4], root+"/") {
			mps = append(mps, f[4])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(mps)))
	return mps
}

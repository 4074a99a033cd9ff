//go:build vm

package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/thinctl/thinctl/dockerdm"
)

// testImages are the images the scenario loads: a shares its base layer
// with b and d; the layers hold whiteouts, an opaque directory, hard
// links, a symlink, xattrs, a big file (bigSize bytes) and a file of
// another owner.
func testImages(t *testing.T, bigSize int) []image {
	big := pattern(bigSize, 1)
	base := layerTar(t, []entry{
		dir("etc/"), file("etc/hello", "hello from the base layer\n"), file("etc/gone", "whited out above\n"),
		dir("opq/"), file("opq/old1", "old 1\n"), file("opq/old2", "old 2\n"), dir("opq/sub/"), file("opq/sub/deep", "deep\n"),
		dir("data/"), {name: "data/big", typ: '0', mode: 0o600, body: big}, hardlink("data/big-link", "data/big"),
		{name: "data/xattr", typ: '0', mode: 0o644, body: []byte("has xattrs\n"), xattrs: map[string]string{"user.thinctl": "one", "user.other": "two"}},
		{name: "data/owned", typ: '0', mode: 0o640, body: []byte("owned by 1000:1000\n"), uid: 1000, gid: 1000},
		symlink("data/link", "../etc/hello"),
	})
	a2 := layerTar(t, []entry{
		dir("etc/"), file("etc/.wh.gone", ""), file("etc/hello", "hello, changed in layer 2\n"),
		dir("opq/"), file("opq/.wh..wh..opq", ""), file("opq/new", "the only file left in opq\n"),
		dir("data/"), file("data/two", "layer two\n"), hardlink("data/two-link", "data/two"),
	})
	a3 := layerTar(t, []entry{dir("three/"), dir("three/a/"), dir("three/a/b/"), file("three/a/b/c", "layer three\n"), file("three/mid", string(pattern(300<<10, 3)))})
	b2 := layerTar(t, []entry{dir("b/"), file("b/only-in-b", "image b\n"), dir("data/"), file("data/.wh.xattr", "")})
	d2 := layerTar(t, []entry{dir("d/"), file("d/removed-with-d", "image d is removed\n")})
	return []image{{tag: "thinctl/a:1", layers: [][]byte{base, a2, a3}}, {tag: "thinctl/b:1", layers: [][]byte{base, b2}}, {tag: "thinctl/d:1", layers: [][]byte{base, d2}}}
}

// populate loads the images and makes containers, a commit and removals;
// it returns what docker images and docker ps -a then list.
func populate(t *testing.T, d *daemon, archive string) (images, ps []string) {
	t.Helper()
	d.docker("load", "-i", archive)
	src := filepath.Join(t.TempDir(), "written")
	if err := os.MkdirAll(filepath.Join(src, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(src, "note"), []byte("written by docker cp into c1\n"), 0o644)
	os.WriteFile(filepath.Join(src, "sub", "blob"), pattern(1<<20, 7), 0o644)
	d.docker("create", "--name", "c1", "thinctl/a:1")
	d.docker("cp", src, "c1:/written")
	d.docker("commit", "c1", "thinctl/c:1")
	d.docker("create", "--name", "c2", "thinctl/b:1")
	d.docker("cp", filepath.Join(src, "note"), "c2:/etc/note-c2")
	d.docker("create", "--name", "c3", "thinctl/a:1")
	d.docker("rm", "c3")
	d.docker("rmi", "thinctl/d:1")
	images = sortedLines(d.docker("images", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"))
	ps = sortedLines(d.docker("ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Names}} {{.Image}}"))
	t.Logf("docker images:\n%s\ndocker ps -a:\n%s", strings.Join(images, "\n"), strings.Join(ps, "\n"))
	return images, ps
}

// TestDockerStoresReadBackAsDockerListedThem is the scenario of issue 14:
// a real dockerd (devicemapper on loop files) makes a store, is stopped
// cleanly (ext4) or killed with SIGKILL in the middle of a docker cp (xfs),
// and dockerdm reads back the images and containers docker listed, with
// every layer's and container's device in the pool, without writing a
// byte of the store, and refuses while dockerd holds it.
func TestDockerStoresReadBackAsDockerListedThem(t *testing.T) {
	dockerDir := requireDocker(t)
	for _, tc := range []struct {
		name string
		fs   string
		kill bool
		big  int // the big file's size: 50 MiB once, smaller for the second store (emulation is slow)
	}{
		{"an ext4 store stopped cleanly", "ext4", false, 50 << 20},
		{"an xfs store whose dockerd was killed during docker cp", "xfs", true, 8 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tStart := time.Now()
			archive := filepath.Join(t.TempDir(), "images.tar")
			if err := os.WriteFile(archive, saveArchive(t, testImages(t, tc.big)), 0o644); err != nil {
				t.Fatal(err)
			}
			root := filepath.Join(os.TempDir(), "docker-"+tc.fs)
			d := startDockerd(t, dockerDir, root, devicemapperFlags(tc.fs)...)
			stopped := false
			defer func() {
				if !stopped {
					d.kill()
				}
			}()
			wantImages, wantPS := populate(t, d, archive)
			ctx := context.Background()

			// While dockerd runs, inspect refuses and names a holder's pid.
			_, err := dockerdm.Inspect(ctx, root, dockerdm.InspectOptions{})
			if !errors.Is(err, dockerdm.ErrHeld) {
				t.Fatalf("Inspect while dockerd runs: %v, want ErrHeld", err)
			}
			holders, _ := dockerdm.FindHolders("", root)
			if !strings.Contains(err.Error(), "pid ") || !holdsPID(holders, d.cmd.Process.Pid) {
				t.Fatalf("Inspect while dockerd (pid %d) runs: %v; holders %v", d.cmd.Process.Pid, err, holders)
			}
			t.Logf("refused while held: %v", err)
			checkCLIRefusesWhileHeld(t, root, d.cmd.Process.Pid)

			if tc.kill {
				big := filepath.Join(t.TempDir(), "big-cp")
				os.WriteFile(big, pattern(16<<20, 9), 0o644)
				cp := exec.Command(filepath.Join(d.bin, "docker"), "-H", "unix://"+d.sock, "cp", big, "c2:/big-cp")
				if err := cp.Start(); err != nil {
					t.Fatal(err)
				}
				wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
				pid, err := waitForArgv0(wctx, "docker-untar")
				cancel()
				if err != nil {
					t.Fatalf("docker cp never started extracting: %v\n%s", err, d.tail())
				}
				d.kill()
				if p, _ := os.FindProcess(pid); p != nil {
					p.Kill()
				}
				cp.Wait()
				t.Logf("dockerd killed while docker-untar (pid %d) extracted into c2", pid)
			} else {
				d.stop()
			}
			stopped = true
			// Many tags on one image (its top layer shared by all): the
			// adopted device's labels must still fit its record.
			wantImages = append(wantImages, addTags(t, root, "thinctl/a:1", manyTags)...)
			sort.Strings(wantImages)
			prefix := ""
			defer func() { teardown(t, root, prefix) }()

			// The store's files, all but the metadata file of a pool that
			// is still up: the kernel writes that while the pool lives.
			skip := ""
			if tc.kill {
				skip = "devicemapper/devicemapper/metadata"
			}
			before := fingerprint(t, root, skip)
			t1 := time.Now()
			rep, err := dockerdm.Inspect(ctx, root, dockerdm.InspectOptions{})
			if err != nil {
				t.Fatalf("Inspect: %v", err)
			}
			t.Logf("Inspect took %v", time.Since(t1).Round(time.Millisecond))
			prefix = rep.Prefix
			if diff := diffFingerprints(before, fingerprint(t, root, skip)); len(diff) > 0 {
				t.Fatalf("Inspect changed the store:\n%s", strings.Join(diff, "\n"))
			}
			checkReport(t, rep, wantImages, wantPS, tc.kill)
			checkCLIReport(t, root, rep)
			checkExport(t, dockerDir, root, rep, wantImages, !tc.kill)
			if diff := diffFingerprints(before, fingerprint(t, root, skip)); len(diff) > 0 {
				t.Fatalf("thinctl docker inspect or export changed the store:\n%s", strings.Join(diff, "\n"))
			}
			checkAgainstThinDump(t, root, rep, tc.kill)
			checkAdopt(t, root, rep, tc.big, tc.kill)
			t.Logf("%s: whole subtest %v", tc.name, time.Since(tStart).Round(time.Second))
		})
	}
}

func holdsPID(hs []dockerdm.Holder, pid int) bool {
	for _, h := range hs {
		if h.PID == pid {
			return true
		}
	}
	return false
}

// checkReport compares the report with what docker listed.
func checkReport(t *testing.T, rep *dockerdm.Report, wantImages, wantPS []string, killed bool) {
	t.Helper()
	var gotImages, gotPS []string
	for _, img := range rep.Images {
		for _, tag := range img.Tags {
			if !strings.Contains(tag, "@") {
				gotImages = append(gotImages, tag+" "+img.ID)
			}
		}
		if len(img.LayerReports) != len(img.DiffIDs) {
			t.Errorf("image %s: %d layers, %d diff ids", img.ID, len(img.LayerReports), len(img.DiffIDs))
		}
		for i, l := range img.LayerReports {
			if l.DeviceID == nil {
				t.Errorf("image %v layer %d (%s): no device", img.Tags, i, l.ChainID)
			}
			if l.DiffID != img.DiffIDs[i] {
				t.Errorf("image %v layer %d: diff %s, want %s", img.Tags, i, l.DiffID, img.DiffIDs[i])
			}
			if i > 0 && l.Parent != img.LayerReports[i-1].ChainID {
				t.Errorf("image %v layer %d: parent %s, want %s", img.Tags, i, l.Parent, img.LayerReports[i-1].ChainID)
			}
		}
	}
	for _, c := range rep.Containers {
		gotPS = append(gotPS, c.ID+" "+c.Name+" "+c.Ref)
		if c.RWDevice == nil || c.InitDevice == nil {
			t.Errorf("container %s: rw device %v, init device %v", c.Name, c.RWDevice, c.InitDevice)
		}
	}
	sort.Strings(gotImages)
	sort.Strings(gotPS)
	if strings.Join(gotImages, "\n") != strings.Join(wantImages, "\n") {
		t.Errorf("images:\n%s\nwant (docker images):\n%s", strings.Join(gotImages, "\n"), strings.Join(wantImages, "\n"))
	}
	if strings.Join(gotPS, "\n") != strings.Join(wantPS, "\n") {
		t.Errorf("containers:\n%s\nwant (docker ps -a):\n%s", strings.Join(gotPS, "\n"), strings.Join(wantPS, "\n"))
	}
	if rep.Pool.Active != killed {
		t.Errorf("pool active %v, want %v (a clean stop takes the pool down, SIGKILL leaves it up)", rep.Pool.Active, killed)
	}
	if !rep.Pool.Compared {
		t.Errorf("pool devices not compared: %v", rep.Pool.Notes)
	}
	if rep.Pool.TransactionID == 0 || rep.Pool.DataBlockSize != 128 || rep.Pool.DataUsed == 0 || rep.Pool.DataBlocks != 3<<30/(128*512) {
		t.Errorf("pool: %+v", rep.Pool)
	}
	if rep.Pool.TransactionOpen {
		t.Errorf("Docker's transaction %d open against the pool's %d after docker cp (which makes no device)", rep.Pool.DockerTransaction, rep.Pool.TransactionID)
	}
	for _, d := range rep.Disagreements {
		t.Errorf("disagreement: %s", d)
	}
	t.Logf("pool %s: %s, transaction %d (Docker's %d), data %d/%d blocks, metadata %d/%d blocks, %d thin devices, %d records",
		rep.Pool.Name, rep.Pool.Source, rep.Pool.TransactionID, rep.Pool.DockerTransaction, rep.Pool.DataUsed, rep.Pool.DataBlocks,
		rep.Pool.MetaUsed, rep.Pool.MetaBlocks, len(rep.Pool.Devices), rep.Records)
}

var devIDRe = regexp.MustCompile(`<device dev_id="(\d+)"`)

// checkAgainstThinDump compares the report's thin ids with thin_dump run
// here (on the metadata file of a pool that is down; a live pool was
// compared through a held metadata root by Inspect, and its transaction
// id is checked against dmsetup status).
func checkAgainstThinDump(t *testing.T, root string, rep *dockerdm.Report, active bool) {
	t.Helper()
	var ids []string
	for _, d := range rep.Pool.Devices {
		ids = append(ids, strconv.Itoa(int(d.ID)))
	}
	if active {
		out, err := exec.Command("dmsetup", "status", rep.Pool.Name).CombinedOutput()
		if err != nil {
			t.Fatalf("dmsetup status: %v: %s", err, out)
		}
		f := strings.Fields(string(out))
		if len(f) < 4 || f[3] != fmt.Sprint(rep.Pool.TransactionID) {
			t.Errorf("dmsetup status %q; report's transaction %d", out, rep.Pool.TransactionID)
		}
		if len(f) < 7 || f[6] != "-" {
			t.Errorf("dmsetup status %q: Inspect left a metadata root held", out)
		}
		return
	}
	out, err := exec.Command("thin_dump", "--skip-mappings", filepath.Join(root, "devicemapper/devicemapper/metadata")).Output()
	if err != nil {
		t.Fatalf("thin_dump: %v", err)
	}
	var want []string
	for _, m := range devIDRe.FindAllStringSubmatch(string(out), -1) {
		want = append(want, m[1])
	}
	sort.Strings(ids)
	sort.Strings(want)
	if strings.Join(ids, " ") != strings.Join(want, " ") {
		t.Errorf("thin ids %v, thin_dump says %v", ids, want)
	}
	if !strings.Contains(string(out), fmt.Sprintf(`transaction="%d"`, rep.Pool.TransactionID)) {
		t.Errorf("transaction %d not in thin_dump's superblock: %.300s", rep.Pool.TransactionID, out)
	}
}

// manyTags is how many tags addTags gives one image: with names this long
// their list takes about 8 KiB, twice what one label value may hold.
const manyTags = 200

// manyTag is the name of the i-th of them.
func manyTag(i int) string { return fmt.Sprintf("thinctl/a:release-%03d-of-a-rather-long-tag-name", i) }

// addTags tags the image that ref names n more times in repositories.json
// (as n docker tag commands would, without their minutes under emulation)
// and returns the lines docker images would list for them.
func addTags(t *testing.T, root, ref string, n int) []string {
	t.Helper()
	p := filepath.Join(root, "image", "devicemapper", "repositories.json")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var repos struct {
		Repositories map[string]map[string]string
	}
	if err := json.Unmarshal(b, &repos); err != nil {
		t.Fatal(err)
	}
	repo := ref[:strings.LastIndex(ref, ":")]
	id := repos.Repositories[repo][ref]
	if id == "" {
		t.Fatalf("repositories.json has no %s", ref)
	}
	var lines []string
	for i := 0; i < n; i++ {
		repos.Repositories[repo][manyTag(i)] = id
		lines = append(lines, manyTag(i)+" "+id)
	}
	if b, err = json.Marshal(repos); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return lines
}

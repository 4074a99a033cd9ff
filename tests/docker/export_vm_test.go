//go:build vm

package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/thinctl/thinctl/dockerdm"
)

var exportRefs = []string{"thinctl/a:1", "thinctl/b:1", "thinctl/c:1"}

// checkExport exports every image of the stopped store and checks each
// layer was rebuilt from its tar-split to its diff_id, that the export
// left no device or loop device behind and, with load set, that a second
// dockerd on overlay2 loads the archive as the same images and docker cp
// returns the files' bytes, and not the files whited out.
func checkExport(t *testing.T, dockerDir, root string, rep *dockerdm.Report, wantImages []string, load bool) {
	t.Helper()
	ctx := context.Background()
	archive := filepath.Join(t.TempDir(), "export.tar")
	f, err := os.Create(archive)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	res, err := dockerdm.Export(ctx, root, exportRefs, f, dockerdm.ExportOptions{})
	f.Close()
	if err != nil {
		t.Fatalf("Export: %v", err)
	}
	t.Logf("Export of %d images, %d layers took %v", len(res.Images), len(res.Layers), time.Since(t0).Round(time.Millisecond))
	chains := map[string]bool{}
	for _, img := range rep.Images {
		for _, l := range img.LayerReports {
			chains[l.ChainID] = true
		}
	}
	if len(res.Layers) != len(chains) {
		t.Errorf("exported %d layers, the images have %d", len(res.Layers), len(chains))
	}
	for _, l := range res.Layers {
		if !l.FromTarSplit || !chains[l.ChainID] {
			t.Errorf("layer %+v", l)
		}
	}
	out, _ := exec.Command("dmsetup", "ls").CombinedOutput()
	if strings.Contains(string(out), "thinctl-ro-") {
		t.Errorf("export left devices behind:\n%s", out)
	}
	if !rep.Pool.Active {
		out, _ = exec.Command("losetup", "-a").CombinedOutput()
		if strings.Contains(string(out), root+"/") {
			t.Errorf("export left loop devices behind:\n%s", out)
		}
	}
	// The CLI's export is checked on the store not loaded elsewhere (an
	// export of the 50 MiB store costs 10-20 s under emulation).
	if cliOut, errOut, code, ok := thinctlUnless(t, load, append([]string{"docker", "export", "--docker-root", root, "--file", archive + ".cli"}, imageFlags()...)...); ok {
		t.Logf("$ thinctl docker export --docker-root %s %s --file export.tar\n%s%s(exit %d)", root, strings.Join(imageFlags(), " "), cliOut, errOut, code)
		a, _ := os.ReadFile(archive)
		b, _ := os.ReadFile(archive + ".cli")
		if code != 0 || !bytes.Equal(a, b) {
			t.Errorf("thinctl docker export: exit %d, %d bytes; the library wrote %d", code, len(b), len(a))
		}
		os.Remove(archive + ".cli")
		_, errOut, code, _ = thinctl(t, "docker", "export", "--docker-root", root, "--image", "thinctl/nope:1", "--file", archive+".nope")
		if _, err := os.Stat(archive + ".nope"); code != 1 || strings.Count(errOut, "\n") != 2 || err == nil {
			t.Errorf("an unknown image: exit %d, file %v\n%s", code, err, errOut)
		}
		t.Logf("$ thinctl docker export --docker-root %s --image thinctl/nope:1 --file x.tar\n%s(exit %d)", root, errOut, code)
	}
	if !load {
		return
	}
	d2 := startDockerd(t, dockerDir, filepath.Join(os.TempDir(), "docker-overlay2"), "--storage-driver", "overlay2")
	defer d2.stop()
	d2.docker("load", "-i", archive)
	got := sortedLines(d2.docker("images", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"))
	if strings.Join(got, "\n") != strings.Join(wantImages, "\n") {
		t.Errorf("overlay2 dockerd loaded:\n%s\nwant the devicemapper store's:\n%s", strings.Join(got, "\n"), strings.Join(wantImages, "\n"))
	}
	d2.docker("create", "--name", "from-export", "thinctl/c:1")
	// Three directories in three docker cp calls (each costs seconds under
	// emulation); the 50 MiB file's bytes are already proven by its
	// layer's digest.
	want := map[string][]byte{
		"written/note":     []byte("written by docker cp into c1\n"),
		"written/sub/blob": pattern(1<<20, 7),
		"etc/hello":        []byte("hello, changed in layer 2\n"),
		"opq/new":          []byte("the only file left in opq\n"),
	}
	files := map[string][]byte{}
	for _, dir := range []string{"/written", "/etc", "/opq"} {
		for name, b := range cpOut(t, d2, "from-export:"+dir) {
			files[name] = b
		}
	}
	for name, w := range want {
		if !bytes.Equal(files[name], w) {
			t.Errorf("docker cp from the loaded export: %s has %d bytes, want %d", name, len(files[name]), len(w))
		}
	}
	if _, ok := files["etc/hello"]; !ok || len(files) < 6 {
		t.Errorf("docker cp returned %d entries", len(files))
	}
	for _, gone := range []string{"etc/gone", "opq/old1", "opq/old2", "opq/sub", "opq/sub/deep"} {
		if _, ok := files[gone]; ok {
			t.Errorf("%s exists after its whiteout", gone)
		}
	}
	checkRecreatedExport(t, d2, root, rep)
}

// checkRecreatedExport exports, from a copy of the store whose layer 2 of
// thinctl/a:1 (whiteouts, an opaque directory, a hard link) lost its
// tar-split, that image and the containers (c2's image adds layer 2 of
// thinctl/b:1); the overlay2 dockerd d2 loads the archive and docker cp
// returns the same files from the re-created layer and from the
// containers' images as docker wrote them.
func checkRecreatedExport(t *testing.T, d2 *daemon, root string, rep *dockerdm.Report) {
	t.Helper()
	if _, err := exec.LookPath("thinctl"); err != nil {
		t.Log("no thinctl on the guest's PATH: the re-created export was not run")
		return
	}
	var chain string
	for _, img := range rep.Images {
		if len(img.Tags) > 0 && img.Tags[0] == "thinctl/a:1" {
			chain = img.LayerReports[1].ChainID
		}
	}
	cp := root + "-copy" // data and metadata hard-linked: the export only reads them
	if out, err := exec.Command("cp", "-al", root, cp).CombinedOutput(); err != nil {
		t.Fatalf("cp -al: %v %s", err, out)
	}
	defer os.RemoveAll(cp)
	if err := os.Remove(filepath.Join(cp, "image/devicemapper/layerdb/sha256", chain[7:], "tar-split.json.gz")); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "recreated.tar")
	out, errOut, code, _ := thinctl(t, "docker", "export", "--docker-root", cp, "--image", "thinctl/a:1", "--containers", "--file", archive)
	t.Logf("$ thinctl docker export --docker-root %s --image thinctl/a:1 --containers --file recreated.tar   # layer %s without its tar-split\n%s%s(exit %d)", cp, chain[7:19], out, errOut, code)
	if code != 0 || !strings.Contains(out, "layer "+chain[7:19]+" re-created from its device") || !strings.Contains(out, "containers/c1:latest") || !strings.Contains(out, "3 layer(s) rebuilt from their tar-splits") {
		t.Fatalf("thinctl docker export of the copy: exit %d\n%s%s", code, out, errOut)
	}
	// The re-created layer holds whiteouts in .wh. form and an opaque directory.
	members := tarMembers(t, archive)
	var layerNames []string
	for name, body := range members {
		if !strings.HasSuffix(name, "/layer.tar") {
			continue
		}
		inner := tarMembers(t, "", body)
		if _, ok := inner["opq/.wh..wh..opq"]; ok {
			layerNames = append(layerNames, name)
			if _, ok := inner["etc/.wh.gone"]; !ok || inner["etc/hello"] == nil {
				t.Errorf("the re-created layer %s lacks etc/.wh.gone or etc/hello: %v", name, keys(inner))
			}
		}
	}
	if len(layerNames) != 1 {
		t.Errorf("%d layers hold opq/.wh..wh..opq, want the re-created one", len(layerNames))
	}
	t.Logf("docker load of the re-created export:\n%s", d2.docker("load", "-i", archive))
	d2.docker("create", "--name", "from-recreated", "thinctl/a:1")
	d2.docker("create", "--name", "from-c1", "containers/c1:latest")
	d2.docker("create", "--name", "from-c2", "containers/c2:latest")
	files := map[string][]byte{}
	for _, src := range []string{"from-recreated:/etc", "from-recreated:/opq", "from-c1:/written", "from-c2:/etc/note-c2"} {
		for name, b := range cpOut(t, d2, src) {
			files[strings.SplitN(src, ":", 2)[0]+":"+name] = b
		}
	}
	want := map[string][]byte{
		"from-recreated:etc/hello": []byte("hello, changed in layer 2\n"),
		"from-recreated:opq/new":   []byte("the only file left in opq\n"),
		"from-c1:written/note":     []byte("written by docker cp into c1\n"),
		"from-c1:written/sub/blob": pattern(1<<20, 7),
		"from-c2:note-c2":          []byte("written by docker cp into c1\n"),
	}
	for name, w := range want {
		if got := files[name]; !bytes.Equal(got, w) {
			t.Errorf("docker cp %s: %s, want %s", name, brief(got), brief(w))
		}
	}
	for _, gone := range []string{"from-recreated:etc/gone", "from-recreated:opq/old1", "from-recreated:opq/sub"} {
		if _, ok := files[gone]; ok {
			t.Errorf("%s exists after its whiteout", gone)
		}
	}
	if t.Failed() {
		t.Logf("docker cp returned %v", keys(files))
	}
}

// tarMembers reads the tar file at path (or body when path is "").
func tarMembers(t *testing.T, path string, body ...[]byte) map[string][]byte {
	t.Helper()
	if path == "" {
		return readTar(t, bytes.NewReader(body[0]), "a layer tar")
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return readTar(t, f, path)
}

// readTar returns the entries of a tar by name (without a trailing
// slash): regular files with their content, other entries with nil.
func readTar(t *testing.T, r io.Reader, what string) map[string][]byte {
	t.Helper()
	tr := tar.NewReader(r)
	out := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("read %s: %v", what, err)
		}
		name := strings.TrimSuffix(h.Name, "/")
		out[name] = nil
		if h.Typeflag == tar.TypeReg {
			if out[name], err = io.ReadAll(tr); err != nil {
				t.Fatalf("read %s: %v", what, err)
			}
		}
	}
}

// brief shows short contents quoted, long ones by size and sha256.
func brief(b []byte) string {
	if len(b) <= 64 {
		return fmt.Sprintf("%q", b)
	}
	return fmt.Sprintf("%d bytes (sha256 %x)", len(b), sha256.Sum256(b))
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// thinctlUnless runs thinctl unless skip is set (ok false then).
func thinctlUnless(t *testing.T, skip bool, args ...string) (string, string, int, bool) {
	t.Helper()
	if skip {
		return "", "", 0, false
	}
	return thinctl(t, args...)
}

func imageFlags() []string {
	var f []string
	for _, r := range exportRefs {
		f = append(f, "--image", r)
	}
	return f
}

// cpOut returns the entries of the tar docker cp writes to stdout for
// src: regular files with their content, other entries with nil.
func cpOut(t *testing.T, d *daemon, src string) map[string][]byte {
	t.Helper()
	return readTar(t, strings.NewReader(d.docker("cp", src, "-")), "docker cp "+src)
}

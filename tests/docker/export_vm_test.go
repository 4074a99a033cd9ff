//go:build vm

package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
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
// returns the files' bytes.
func checkExport(t *testing.T, dockerDir, root string, rep *dockerdm.Report, wantImages []string, bigSize int, load bool) {
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
	if cliOut, errOut, code, ok := thinctl(t, append([]string{"docker", "export", "--docker-root", root, "--file", archive + ".cli"}, imageFlags()...)...); ok {
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
	d2.docker("create", "--name", "x", "thinctl/c:1")
	for _, c := range []struct {
		path string
		want []byte
	}{
		{"/written/sub/blob", pattern(1<<20, 7)},
		{"/data/big", pattern(bigSize, 1)},
		{"/etc/hello", []byte("hello, changed in layer 2\n")},
		{"/opq/new", []byte("the only file left in opq\n")},
		{"/data/xattr", []byte("has xattrs\n")},
	} {
		b := cpOut(t, d2, "x:"+c.path)
		if !bytes.Equal(b, c.want) {
			t.Errorf("docker cp x:%s from the loaded export: %d bytes, want %d", c.path, len(b), len(c.want))
		}
	}
	for _, gone := range []string{"/etc/gone", "/opq/old1", "/opq/sub"} {
		if _, err := d2.try("cp", "x:"+gone, "-"); err == nil {
			t.Errorf("x:%s exists after its whiteout", gone)
		}
	}
}

func imageFlags() []string {
	var f []string
	for _, r := range exportRefs {
		f = append(f, "--image", r)
	}
	return f
}

// cpOut returns the content of one file docker cp writes as a tar to stdout.
func cpOut(t *testing.T, d *daemon, src string) []byte {
	t.Helper()
	tr := tar.NewReader(strings.NewReader(d.docker("cp", src, "-")))
	if _, err := tr.Next(); err != nil {
		t.Fatalf("docker cp %s: %v", src, err)
	}
	b, err := io.ReadAll(tr)
	if err != nil {
		t.Fatalf("docker cp %s: %v", src, err)
	}
	return b
}

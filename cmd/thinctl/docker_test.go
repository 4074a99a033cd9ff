package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"

	"github.com/thinctl/thinctl/dockerdm"
)

// A store as Docker lays it out, just enough for Open: the host has no
// device-mapper, so these tests stop before the pool; the VM scenario
// (tests/docker) runs the commands on stores a real dockerd made.
func fakeDockerStore(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for p, c := range map[string]string{
		"devicemapper/devicemapper/data":       "",
		"devicemapper/devicemapper/metadata":   "",
		"devicemapper/metadata/base":           `{"device_id":1,"size":536870912,"transaction_id":1,"initialized":true,"deleted":false}`,
		"image/devicemapper/repositories.json": `{"Repositories":{}}`,
	} {
		full := filepath.Join(root, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(c), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestDockerCommandsRefuseBadInputWithOneLineAndAHint(t *testing.T) {
	garbage := fakeDockerStore(t)
	os.WriteFile(filepath.Join(garbage, "devicemapper/metadata/0123abcd"), []byte("not json"), 0o600)
	overlay := t.TempDir()
	pooled := t.TempDir() // a thinctl root with a pool: pool.json is what says so
	os.MkdirAll(filepath.Join(pooled, "devicemapper"), 0o700)
	os.WriteFile(filepath.Join(pooled, "devicemapper", "pool.json"), []byte("{}"), 0o600)
	os.MkdirAll(filepath.Join(overlay, "image", "overlay2"), 0o755)
	tests := []struct {
		name string
		args []string
		code int
		want string
		hint string
	}{
		{"inspect without --docker-root", []string{"docker", "inspect"}, 2, "--docker-root is required", "thinctl docker inspect --help"},
		{"export without --image", []string{"docker", "export", "--docker-root", "/x"}, 2, "--image or --containers is required", "thinctl docker export --help"},
		{"adopt without --docker-root", []string{"docker", "adopt"}, 2, "--docker-root is required", "thinctl docker adopt --help"},
		{"adopt into a root that has a pool", []string{"--root", pooled, "docker", "adopt", "--docker-root", fakeDockerStore(t)}, 1,
			"docker adopt: " + pooled + ": thin pool already initialized", "give another --root"},
		{"adopt of a garbage store", []string{"--root", filepath.Join(t.TempDir(), "new"), "docker", "adopt", "--docker-root", garbage}, 1,
			"devicemapper/metadata/0123abcd: not a JSON object", "thinctl changed nothing"},
		{"a data root that does not exist", []string{"docker", "inspect", "--docker-root", "/nonexistent/docker"}, 1,
			"docker inspect: /nonexistent/docker does not exist: no Docker data root", "--docker-root names Docker's data root"},
		{"an overlay2 data root", []string{"docker", "inspect", "--docker-root", overlay}, 1,
			"has no devicemapper/ directory (its image database is for overlay2): not a devicemapper store", "--docker-root names"},
		{"a garbage device record", []string{"docker", "inspect", "--docker-root", garbage}, 1,
			"devicemapper/metadata/0123abcd: not a JSON object", "thinctl changed nothing"},
		{"an image the store lacks", []string{"docker", "export", "--docker-root", fakeDockerStore(t), "--image", "nope:1", "--file", filepath.Join(t.TempDir(), "x.tar")}, 1,
			`docker export: "nope:1": no such image in the Docker store`, "thinctl docker inspect lists the store's images"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			var before string
			if tc.name == "a garbage device record" {
				before = treeOf(t, garbage)
			}
			r := h.run(tc.args...)
			lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
			if r.code != tc.code || r.stdout != "" || len(lines) != 2 || !strings.Contains(lines[0], tc.want) || !strings.Contains(lines[1], tc.hint) {
				t.Fatalf("exit %d, stdout %q, stderr:\n%s\nwant exit %d, %q and a hint with %q", r.code, r.stdout, r.stderr, tc.code, tc.want, tc.hint)
			}
			if before != "" && treeOf(t, garbage) != before {
				t.Error("the store changed")
			}
		})
	}
	if matches, _ := filepath.Glob(filepath.Join(os.TempDir(), "thinctl-docker-export-*")); len(matches) > 0 {
		t.Errorf("export left work directories: %v", matches)
	}
}

// treeOf lists every path under root with its size and mtime.
func treeOf(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil {
			fmt.Fprintf(&b, "%s %v %d\n", p, fi.ModTime(), fi.Size())
		}
		return nil
	})
	return b.String()
}

func TestDockerReportsEscapeControlCharactersFromTheStore(t *testing.T) {
	evil := "x\x1b[2J\ny\r"
	rep := &dockerdm.Report{
		Root: "/var/lib/docker",
		Pool: dockerdm.PoolReport{BaseDeviceFilesystem: evil},
		Base: &dockerdm.DeviceRecord{DeviceID: 1, Size: 1 << 30},
		Images: []dockerdm.ImageReport{{Image: dockerdm.Image{ID: "sha256:" + strings.Repeat("a", 64), Tags: []string{evil + ":1"}},
			LayerReports: []dockerdm.LayerReport{{Layer: dockerdm.Layer{ChainID: "sha256:" + strings.Repeat("b", 64), CacheID: evil}}}}},
		Containers:    []dockerdm.ContainerReport{{Container: dockerdm.Container{ID: strings.Repeat("c", 64), Name: evil, Ref: evil, MountID: evil}}},
		Disagreements: []dockerdm.Disagreement{{Kind: "missing", Detail: evil}},
		Notes:         []string{evil},
	}
	var b strings.Builder
	if err := writeDockerReport(&b, rep); err != nil {
		t.Fatal(err)
	}
	res := &dockerdm.AdoptResult{Devices: []dockerdm.AdoptedDevice{{ID: "image-x", Kind: "layer", What: "image " + evil}}, LeftOut: []string{evil}}
	var a strings.Builder
	writeAdoptReport(&a, res)
	for name, out := range map[string]string{"inspect": b.String(), "adopt": a.String()} {
		for _, r := range out {
			if r != '\n' && unicode.IsControl(r) {
				t.Errorf("%s output carries the control character %q:\n%s", name, r, out)
				break
			}
		}
		if strings.Contains(out, "\ny") || !strings.Contains(out, `x\x1b[2J\ny\r`) {
			t.Errorf("%s output does not show the hostile name escaped on one line:\n%s", name, out)
		}
	}
}

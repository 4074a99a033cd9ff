//go:build vm

package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// pauseImage is the sandbox image: one layer holding /pause.
func pauseImage() [][]entry {
	return [][]entry{{{name: "pause", typ: tar.TypeReg, mode: 0o755, data: pauseELF()}}}
}

// criTestImage is the pod's image: the feature image's whiteout, opaque
// directory, hard link and symbolic link (with a 1 MiB file instead of 20)
// and, in a layer of its own, the guest's static busybox as /bin/sh and
// the few commands the container and ExecSync run. It returns the layers
// and the contents of /data/big.
func criTestImage(t *testing.T) ([][]entry, []byte) {
	t.Helper()
	layers, _ := featureImage()
	big := randomBytes(21, 1<<20)
	for i, e := range layers[0] {
		if e.name == "data/big" {
			layers[0][i].data = big
		}
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skipf("no static busybox to put into the test image: %v", err)
	}
	l := []entry{
		{name: "bin", typ: tar.TypeDir, mode: 0o755},
		{name: "bin/busybox", typ: tar.TypeReg, mode: 0o755, data: bb},
	}
	for _, applet := range []string{"sh", "cat", "ls", "stat", "readlink", "md5sum", "sleep"} {
		l = append(l, entry{name: "bin/" + applet, typ: tar.TypeSymlink, linkname: "busybox"})
	}
	return append(layers, l), big
}

// registry is Debian's docker-registry (distribution) serving on loopback
// in the guest.
type registry struct {
	host string // 127.0.0.1:PORT
	cmd  *exec.Cmd
}

// startRegistry brings up the loopback interface (the guest has no other)
// and runs docker-registry on 127.0.0.1:5000 with its storage under a
// temporary directory, until the test ends.
func startRegistry(t *testing.T, bin string) *registry {
	t.Helper()
	if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("ip link set lo up: %v: %s", err, out)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yml")
	writeFile(t, cfg, fmt.Sprintf(`version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: 127.0.0.1:5000
`, filepath.Join(dir, "data")))
	logf, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logf.Close()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("registry log:\n%s", tail(string(b), 30))
		}
	})
	reg := &registry{host: "127.0.0.1:5000", cmd: cmd}
	for t0 := time.Now(); time.Since(t0) < 60*time.Second; time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get("http://" + reg.host + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return reg
			}
		}
	}
	b, _ := os.ReadFile(logf.Name())
	t.Fatalf("docker-registry did not answer on %s within 60 s:\n%s", reg.host, tail(string(b), 30))
	return nil
}

// push uploads an image's blobs (ociImage's order: layers, config,
// manifest) to repo:tag with the registry API's monolithic uploads and
// returns the image's reference.
func (reg *registry) push(t *testing.T, repo, tag string, blobs []blob) string {
	t.Helper()
	base := "http://" + reg.host + "/v2/" + repo
	do := func(method, u, ctype string, body []byte, want int) *http.Response {
		req, err := http.NewRequest(method, u, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, u, err)
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("%s %s: %s, want %d: %s", method, u, resp.Status, want, msg)
		}
		return resp
	}
	for _, b := range blobs[:len(blobs)-1] {
		resp := do(http.MethodPost, base+"/blobs/uploads/", "", nil, http.StatusAccepted)
		loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
		if err != nil {
			t.Fatalf("upload location %q: %v", resp.Header.Get("Location"), err)
		}
		q := loc.Query()
		q.Set("digest", b.digest())
		loc.RawQuery = q.Encode()
		do(http.MethodPut, loc.String(), "application/octet-stream", b.data, http.StatusCreated)
	}
	m := blobs[len(blobs)-1]
	do(http.MethodPut, base+"/manifests/"+url.PathEscape(tag), m.mediaType, m.data, http.StatusCreated)
	return reg.host + "/" + repo + ":" + tag
}

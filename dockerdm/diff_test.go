package dockerdm

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteDiffWritesWhiteoutsAndOpaqueDirectories(t *testing.T) {
	old, cur := t.TempDir(), t.TempDir()
	writeFiles(t, old, map[string]string{
		"etc/hello": "old", "etc/gone": "x", "opq/a": "1", "opq/sub/deep": "2", "same/file": "s",
	})
	writeFiles(t, cur, map[string]string{"etc/hello": "new", "opq/new": "n", "added/f": "f"})
	// A thin snapshot keeps an untouched file's inode and ctime: a hard
	// link stands in for it. etc/hello was rewritten with the same size,
	// mode and mtime, which only its inode and ctime tell.
	os.Mkdir(filepath.Join(cur, "same"), 0o755)
	if err := os.Link(filepath.Join(old, "same/file"), filepath.Join(cur, "same/file")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"same", "etc/hello", "etc"} {
		st, _ := os.Stat(filepath.Join(old, p))
		os.Chmod(filepath.Join(cur, p), st.Mode().Perm())
		os.Chtimes(filepath.Join(cur, p), st.ModTime(), st.ModTime())
	}
	var buf bytes.Buffer
	n, err := WriteDiff(&buf, cur, old)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) {
		t.Errorf("WriteDiff says %d bytes, wrote %d", n, buf.Len())
	}
	var names []string
	bodies := map[string]string{}
	tr := tar.NewReader(&buf)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		b, _ := io.ReadAll(tr)
		bodies[h.Name] = string(b)
	}
	want := "added/ added/f etc/ etc/.wh.gone etc/hello opq/ opq/.wh..wh..opq opq/new"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("entries:\n%s\nwant:\n%s", got, want)
	}
	if bodies["etc/hello"] != "new" || bodies["added/f"] != "f" {
		t.Errorf("bodies %v", bodies)
	}

	buf.Reset()
	if _, err := WriteDiff(&buf, cur, ""); err != nil {
		t.Fatal(err)
	}
	if s := buf.String(); strings.Contains(s, ".wh.") || !strings.Contains(s, "same/file") {
		t.Errorf("a first layer (no parent) has whiteouts or lacks files")
	}
}

func TestContainerTagIsAValidRepositoryName(t *testing.T) {
	for _, tc := range []struct{ name, want string }{
		{"c1", "containers/c1:latest"},
		{"/My_App.v2", "containers/my-app-v2:latest"},
		{"--", "containers/111111111111:latest"},
	} {
		if got := ContainerTag(Container{ID: ctr1, Name: tc.name}); got != tc.want {
			t.Errorf("container %q: tag %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestRewriteConfigReplacesTheDiffIDsAndKeepsTheRest(t *testing.T) {
	cfg := []byte(`{"architecture":"amd64","config":{"Env":["A=1"]},"created":"2023-11-14T22:13:20Z","history":[{"created_by":"x"}],"os":"linux","rootfs":{"type":"layers","diff_ids":["` + diffA + `"]},"size":12345678901234567}`)
	out, err := rewriteConfig(cfg, []string{diffB, diffC}, "a container's layer")
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseImageConfig(out)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.DiffIDs, " ") != diffB+" "+diffC || c.Created == "2023-11-14T22:13:20Z" {
		t.Errorf("rewritten: %s", out)
	}
	for _, keep := range []string{`"Env":["A=1"]`, `"architecture":"amd64"`, `"size":12345678901234567`, `{"created_by":"x"}`, `"created_by":"a container's layer"`} {
		if !strings.Contains(string(out), keep) {
			t.Errorf("rewritten configuration lost %s: %s", keep, out)
		}
	}
	if _, err := rewriteConfig([]byte(`{"os":"linux"}`), nil, ""); err == nil {
		t.Error("a configuration without rootfs was rewritten")
	}
}

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
	writeFiles(t, cur, map[string]string{
		"etc/hello": "new", "opq/new": "n", "same/file": "s", "added/f": "f",
	})
	// Same mtimes for what did not change, as in a snapshot.
	for _, p := range []string{"same", "same/file"} {
		st, _ := os.Stat(filepath.Join(old, p))
		os.Chtimes(filepath.Join(cur, p), st.ModTime(), st.ModTime())
		os.Chmod(filepath.Join(cur, p), st.Mode().Perm())
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

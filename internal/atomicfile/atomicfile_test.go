package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteReplacesTheFileAndLeavesNoTemporary(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "pool.json")
	if err := os.WriteFile(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	var sawOld bool
	err := Write(p, []byte("new"), Options{BeforeRename: func() {
		b, _ := os.ReadFile(p)
		sawOld = string(b) == "old"
	}})
	if err != nil {
		t.Fatal(err)
	}
	if !sawOld {
		t.Fatal("the file changed before the rename")
	}
	b, err := os.ReadFile(p)
	if err != nil || string(b) != "new" {
		t.Fatalf("read back %q, %v", b, err)
	}
	st, _ := os.Stat(p)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600 by default", st.Mode().Perm())
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("directory holds %d entries, want only pool.json", len(ents))
	}
}

func TestWriteKeepsTheOldFileWhenItFails(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "target")
	if err := os.Mkdir(p, 0o755); err != nil { // a directory cannot be renamed over by a file
		t.Fatal(err)
	}
	if err := Write(p, []byte("x"), Options{Perm: 0o644}); err == nil {
		t.Fatal("Write over a directory succeeded")
	}
	if st, err := os.Stat(p); err != nil || !st.IsDir() {
		t.Fatalf("target changed: %v %v", st, err)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if IsTemp(e.Name()) {
			t.Fatalf("temporary file %s left behind", e.Name())
		}
	}
}

func TestIsTempKnowsOnlyWritesTemporaries(t *testing.T) {
	for name, want := range map[string]bool{".pool.json.tmp-123": true, "pool.json": false, ".hidden": false, "a.tmp-1": false} {
		if IsTemp(name) != want {
			t.Errorf("IsTemp(%q) = %v", name, !want)
		}
	}
}

package hostfs

import (
	"os"
	"path/filepath"
	"testing"
)

const (
	MiB = 1 << 20
)

func TestHostSpaceCountsWhatTheSparseFilesMayStillTake(t *testing.T) {
	dir := t.TempDir()
	data, meta := filepath.Join(dir, "data"), filepath.Join(dir, "meta")
	for _, f := range []string{data, meta} {
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(f, int64(8*MiB)); err != nil {
			t.Fatal(err)
		}
	}
	h, err := Stat(data, meta)
	if err != nil {
		t.Fatal(err)
	}
	if !h.MetadataSparse() || h.Needed() != 16*MiB || !h.SameFilesystem || h.Free == 0 {
		t.Fatalf("sparse files: %+v", h)
	}
	if err := AllocateMetadata(meta); err != nil {
		t.Fatal(err)
	}
	if h, _ = Stat(data, meta); h.MetadataSparse() || h.Needed() != 8*MiB {
		t.Fatalf("after allocating the metadata file: %+v (needed %d)", h, h.Needed())
	}
	if fi, _ := os.Stat(meta); fi.Size() != int64(8*MiB) {
		t.Fatalf("allocating changed the file's size to %d", fi.Size())
	}
	if (Space{Free: MiB, DataSize: 3 * MiB}).Short() != 2*MiB {
		t.Fatal("Short")
	}
}

package hostfs

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/thinctl/thinctl/internal/thinmeta"
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

func TestPunchedRunsReadBackAsZerosAndKeepTheFileSize(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data")
	data := make([]byte, 4*MiB)
	for i := range data {
		data[i] = 0xa5
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	// Blocks of 1 MiB: punch the second and the fourth.
	if err := PunchRuns(path, []thinmeta.Run{{Start: 1, Len: 1}, {Start: 3, Len: 1}}, MiB); err != nil {
		t.Skipf("this filesystem cannot punch holes: %v", err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(data) {
		t.Fatalf("size %d after punching, want %d", len(got), len(data))
	}
	for i, b := range got {
		punched := (i >= MiB && i < 2*MiB) || i >= 3*MiB
		if punched && b != 0 || !punched && b != 0xa5 {
			t.Fatalf("byte %d is %#x after punching blocks 1 and 3", i, b)
		}
	}
}

func TestCreateAllocatedLeavesAnExistingFileAsItWas(t *testing.T) {
	path := filepath.Join(t.TempDir(), "metadata.repaired")
	if err := os.WriteFile(path, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := CreateAllocated(path, MiB); err == nil {
		t.Fatal("an existing file was taken over")
	}
	if b, _ := os.ReadFile(path); string(b) != "keep" {
		t.Fatalf("the existing file reads %q", b)
	}
}

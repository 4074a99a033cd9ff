package fs

import (
	"encoding/binary"
	"errors"
	"testing"
)

func ext4Superblock(state uint16, count uint32) []byte {
	b := make([]byte, extSuperOffset+extStateLen)
	sb := b[extSuperOffset:]
	binary.LittleEndian.PutUint16(sb[extMagic:], extMagicValue)
	binary.LittleEndian.PutUint16(sb[extState:], state)
	binary.LittleEndian.PutUint32(sb[extErrorCount:], count)
	return b
}

func TestAnExt4SuperblockThatRecordedErrorsIsReported(t *testing.T) {
	cases := []struct {
		name   string
		b      []byte
		errors bool
		count  uint32
	}{
		{"a clean filesystem", ext4Superblock(1, 0), false, 0},
		{"the error state bit", ext4Superblock(3, 0), true, 0},
		{"an error count without the state bit", ext4Superblock(1, 7), true, 7},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := ParseFsErrors(c.b)
			if err != nil || !r.Known || r.Type != Ext4 || r.HasErrors != c.errors || r.Count != c.count {
				t.Fatalf("ParseFsErrors = %+v, %v; want errors %v count %d", r, err, c.errors, c.count)
			}
		})
	}
}

func TestATruncatedOrForeignSuperblockIsUnknown(t *testing.T) {
	b := ext4Superblock(2, 1)
	if _, err := ParseFsErrors(b[:extSuperOffset+extMagic+2]); !errors.Is(err, ErrUnknownFilesystem) {
		t.Fatalf("truncated: %v", err)
	}
	if _, err := ParseFsErrors(make([]byte, 2048)); !errors.Is(err, ErrUnknownFilesystem) {
		t.Fatalf("zeros: %v", err)
	}
	if r, err := ParseFsErrors([]byte("XFSB0000")); err != nil || r.Type != XFS || r.Known {
		t.Fatalf("xfs: %+v %v", r, err)
	}
}

func TestE2fsckExitStatusesAreMapped(t *testing.T) {
	for code, want := range map[int]string{0: "clean", 1: "fixed", 2: "fixed", 4: "error", 8: "error"} {
		r, err := e2fsckResult(FsckResult{}, code)
		got := "error"
		switch {
		case err != nil:
		case r.Fixed:
			got = "fixed"
		case r.Clean:
			got = "clean"
		}
		if got != want {
			t.Errorf("exit %d: %s, want %s", code, got, want)
		}
	}
}

func FuzzParseFsErrors(f *testing.F) {
	f.Add(ext4Superblock(1, 0))
	f.Add(ext4Superblock(2, 3))
	f.Add([]byte("XFSB"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseFsErrors(b)
		if err == nil && r.Type == Ext4 && len(b) < extSuperOffset+extStateLen {
			t.Fatalf("parsed a truncated superblock: %+v", r)
		}
	})
}

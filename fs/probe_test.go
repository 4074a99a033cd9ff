package fs

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/pkg/errors"
)

func TestProbeReadsImagesMadeByMkfs(t *testing.T) {
	for _, typ := range []Type{Ext4, XFS} {
		t.Run(string(typ)+" image reports its type, blkid's UUID and its size", func(t *testing.T) {
			img := imageFile(t, typ)
			got, err := Probe(img)
			if err != nil {
				t.Fatalf("Probe: %v", err)
			}
			if got.Type != typ {
				t.Errorf("Type = %q, want %q", got.Type, typ)
			}
			if want := blkidUUID(t, img); got.UUID != want {
				t.Errorf("UUID = %q, blkid says %q", got.UUID, want)
			}
			if got.Size != uint64(mkfsMin[typ]) {
				t.Errorf("Size = %d, want the image size %d", got.Size, mkfsMin[typ])
			}
		})
	}
}

func TestProbeRefusesWhatIsNoFilesystem(t *testing.T) {
	requireTools(t, "mkfs.ext4")
	ext4 := imageFile(t, Ext4)
	head, err := os.ReadFile(ext4)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tests := []struct {
		name    string
		content []byte
	}{
		{"an empty file", nil},
		{"a file of zeros", make([]byte, 1<<20)},
		{"an ext4 image cut before its UUID", head[:1100]},
		{"a 64-bit ext4 image cut before the high block count", head[:1300]},
		{"an xfs magic without the rest", []byte("XFSB\x00\x00\x10\x00")},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, "img"+string(rune('a'+i)))
			if err := os.WriteFile(p, tt.content, 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := Probe(p); !errors.Is(err, ErrUnknownFilesystem) {
				t.Fatalf("Probe = %v, want ErrUnknownFilesystem", err)
			}
		})
	}
}

func TestProbeOfAMissingFileIsNotUnknownFilesystem(t *testing.T) {
	_, err := Probe(filepath.Join(t.TempDir(), "missing"))
	if err == nil || errors.Is(err, ErrUnknownFilesystem) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Probe of a missing file = %v, want a not-exist error", err)
	}
}

// extSuper builds the first bytes of a device holding an ext4 superblock.
func extSuper(logBlock, blocksLo, blocksHi, incompat uint32) []byte {
	b := make([]byte, probeLen)
	sb := b[extSuperOffset:]
	binary.LittleEndian.PutUint32(sb[extBlocksCountLo:], blocksLo)
	binary.LittleEndian.PutUint32(sb[extLogBlockSize:], logBlock)
	binary.LittleEndian.PutUint16(sb[extMagic:], extMagicValue)
	binary.LittleEndian.PutUint32(sb[extFeatureIncompat:], incompat)
	for i := 0; i < 16; i++ {
		sb[extUUID+i] = byte(i + 1)
	}
	binary.LittleEndian.PutUint32(sb[extBlocksCountHi:], blocksHi)
	return b
}

// xfsSuper builds the first bytes of a device holding an xfs superblock.
func xfsSuper(blockSize uint32, dblocks uint64) []byte {
	b := make([]byte, 512)
	copy(b, xfsMagic)
	binary.BigEndian.PutUint32(b[xfsBlockSize:], blockSize)
	binary.BigEndian.PutUint64(b[xfsDBlocks:], dblocks)
	for i := 0; i < 16; i++ {
		b[xfsUUID+i] = byte(0xa0 + i)
	}
	return b
}

func TestProbeSuperblock(t *testing.T) {
	const extID, xfsID = "01020304-0506-0708-090a-0b0c0d0e0f10", "a0a1a2a3-a4a5-a6a7-a8a9-aaabacadaeaf"
	tests := []struct {
		name    string
		b       []byte
		want    ProbeResult
		wantErr bool
	}{
		{"ext4 with 4 KiB blocks", extSuper(2, 1000, 7, 0), ProbeResult{Ext4, extID, 1000 * 4096}, false},
		{"ext4 ignores the high count without the 64bit feature", extSuper(0, 10, 1, 0), ProbeResult{Ext4, extID, 10 * 1024}, false},
		{"ext4 adds the high count with the 64bit feature", extSuper(2, 0, 1, extIncompat64Bit), ProbeResult{Ext4, extID, 1 << 32 * 4096}, false},
		{"ext4 with 64 KiB blocks", extSuper(6, 3, 0, 0), ProbeResult{Ext4, extID, 3 << 16}, false},
		{"ext4 with a block size over 64 KiB is refused", extSuper(7, 3, 0, 0), ProbeResult{}, true},
		{"ext4 with no blocks is refused", extSuper(2, 0, 0, 0), ProbeResult{}, true},
		{"xfs with 4 KiB blocks", xfsSuper(4096, 81920), ProbeResult{XFS, xfsID, 81920 * 4096}, false},
		{"xfs with a block size that is no power of two is refused", xfsSuper(3000, 10), ProbeResult{}, true},
		{"xfs with a block size under 512 is refused", xfsSuper(256, 10), ProbeResult{}, true},
		{"xfs whose size overflows is refused", xfsSuper(65536, 1<<60), ProbeResult{}, true},
		{"a lowercase xfs magic is unknown", append([]byte("xfsb"), xfsSuper(4096, 1)[4:]...), ProbeResult{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ProbeSuperblock(tt.b)
			if tt.wantErr {
				if !errors.Is(err, ErrUnknownFilesystem) {
					t.Fatalf("ProbeSuperblock = %+v, %v; want ErrUnknownFilesystem", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ProbeSuperblock = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func FuzzProbeSuperblock(f *testing.F) {
	f.Add(extSuper(2, 1000, 7, extIncompat64Bit))
	f.Add(extSuper(0, 1, 0, 0))
	f.Add(xfsSuper(4096, 81920))
	f.Add(extSuper(2, 1000, 0, 0)[:1100])
	f.Add([]byte("XFSB"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ProbeSuperblock(b)
		if err != nil {
			if !errors.Is(err, ErrUnknownFilesystem) {
				t.Fatalf("error %v is not ErrUnknownFilesystem", err)
			}
			return
		}
		if (r.Type != Ext4 && r.Type != XFS) || r.Size == 0 || len(r.UUID) != 36 {
			t.Fatalf("implausible result %+v", r)
		}
	})
}

package thinmeta

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"testing"

	"github.com/pkg/errors"
)

// The tests build metadata images block by block in the kernel's layout.
// The layout itself is proven against the real kernel and thin_dump by
// the VM tests (thinpool's TestTheMetadataReaderSeesWhatThinDumpSees);
// these prove the checks and the walks.

var le = binary.LittleEndian

// image is a metadata device in memory.
type image map[uint64][]byte

func (im image) ReadAt(p []byte, off int64) (int, error) {
	b, ok := im[uint64(off)/BlockSize]
	if !ok {
		return 0, io.EOF
	}
	return copy(p, b), nil
}

// superblockBytes encodes a superblock at blocknr.
func superblockBytes(blocknr uint64, s Superblock) []byte {
	b := make([]byte, BlockSize)
	le.PutUint64(b[sbBlocknr:], blocknr)
	le.PutUint64(b[sbMagic:], SuperblockMagic)
	le.PutUint32(b[sbVersion:], 2)
	le.PutUint64(b[sbHeldRoot:], s.HeldRoot)
	le.PutUint64(b[sbDataMapping:], s.DataMappingRoot)
	le.PutUint64(b[sbDeviceDetails:], s.DeviceDetailsRoot)
	le.PutUint32(b[sbDataBlockSize:], s.DataBlockSize)
	le.PutUint32(b[sbMetaBlockSize:], 8)
	le.PutUint64(b[sbMetadataBlocks:], s.MetadataBlocks)
	le.PutUint32(b[sbCsum:], checksum(b[sbFlags:], superblockCsumXor))
	return b
}

// nodeBytes encodes a btree node at blocknr with 8-byte values.
func nodeBytes(blocknr uint64, leaf bool, keys, values []uint64) []byte {
	const maxEntries = 252 // (4096-32)/16 rounded down to a multiple of 3, as the kernel does
	b := make([]byte, BlockSize)
	flags := uint32(internalNode)
	if leaf {
		flags = leafNode
	}
	le.PutUint32(b[4:], flags)
	le.PutUint64(b[8:], blocknr)
	le.PutUint32(b[16:], uint32(len(keys)))
	le.PutUint32(b[20:], maxEntries)
	le.PutUint32(b[24:], 8)
	for i := range keys {
		le.PutUint64(b[nodeHeaderSize+8*i:], keys[i])
		le.PutUint64(b[nodeHeaderSize+8*maxEntries+8*i:], values[i])
	}
	reseal(b)
	return b
}

// reseal recomputes a node's checksum after a test changed it.
func reseal(b []byte) { le.PutUint32(b[0:], checksum(b[4:], btreeCsumXor)) }

func pack(data uint64) uint64 { return data<<24 | 7 }

// pool is a small image: devices 1 (origin), 2 (a snapshot of 1 that
// wrote block 5 and added 9), 3 (an unwritten snapshot of 1), 4 (its own
// tree), each bottom tree one leaf, except 1's, an internal node over two
// leaves shared by 3.
func pool() image {
	im := image{}
	im[0] = superblockBytes(0, Superblock{DataMappingRoot: 1, DeviceDetailsRoot: 2, DataBlockSize: 128, MetadataBlocks: 64})
	im[1] = nodeBytes(1, true, []uint64{1, 2, 3, 4}, []uint64{10, 20, 10, 30})
	// 1: internal 10 → leaves 11 (v0..3) and 12 (v5..6)
	im[10] = nodeBytes(10, false, []uint64{0, 5}, []uint64{11, 12})
	im[11] = nodeBytes(11, true, []uint64{0, 1, 2, 3}, []uint64{pack(100), pack(101), pack(102), pack(103)})
	im[12] = nodeBytes(12, true, []uint64{5, 6}, []uint64{pack(105), pack(106)})
	// 2: internal 20 → leaf 11 (shared) and its own leaf 21 (v5 rewritten, v9 new)
	im[20] = nodeBytes(20, false, []uint64{0, 5}, []uint64{11, 21})
	im[21] = nodeBytes(21, true, []uint64{5, 6, 9}, []uint64{pack(200), pack(106), pack(201)})
	// 4: one leaf
	im[30] = nodeBytes(30, true, []uint64{0, 1}, []uint64{pack(300), pack(301)})
	return im
}

func newReader(t *testing.T, im image, budget int) (*Reader, Superblock) {
	t.Helper()
	m, err := NewReader(im, make([]byte, BlockSize), budget)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := m.Superblock(0)
	if err != nil {
		t.Fatal(err)
	}
	return m, sb
}

func TestDevicesListsEveryThinIDAndItsTree(t *testing.T) {
	m, sb := newReader(t, pool(), 0)
	devs, err := m.Devices(sb)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(devs); got != "map[1:10 2:20 3:10 4:30]" {
		t.Fatalf("Devices = %s", got)
	}
}

func TestMappingsWalkADevicesTreeInOrder(t *testing.T) {
	m, _ := newReader(t, pool(), 0)
	ms, err := m.Mappings(20, 1000)
	if err != nil {
		t.Fatal(err)
	}
	want := "[{0 100 7} {1 101 7} {2 102 7} {3 103 7} {5 200 7} {6 106 7} {9 201 7}]"
	if got := fmt.Sprint(ms); got != want {
		t.Fatalf("Mappings = %s, want %s", got, want)
	}
}

func TestExclusiveFindsTheBlocksOnlyOneDeviceMaps(t *testing.T) {
	tests := []struct {
		name string
		dev  uint32
		want string
	}{
		{"an origin an unwritten snapshot shares the tree of has none", 1, "[]"},
		{"the unwritten snapshot has none either", 3, "[]"},
		{"a written snapshot has what it rewrote and added, not the leaf it shares nor a block another leaf maps too", 2, "[200 201]"},
		{"a device with a tree of its own has all its blocks", 4, "[300 301]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, sb := newReader(t, pool(), 0)
			got, err := m.Exclusive(sb, tt.dev, 1000)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != tt.want {
				t.Fatalf("Exclusive(%d) = %v, want %s", tt.dev, got, tt.want)
			}
		})
	}
}

func TestExclusiveOfAMissingDeviceIsErrNoDevice(t *testing.T) {
	m, sb := newReader(t, pool(), 0)
	if _, err := m.Exclusive(sb, 9, 1000); !errors.Is(err, ErrNoDevice) {
		t.Fatalf("Exclusive(9) = %v, want ErrNoDevice", err)
	}
}

func TestAWalkOverItsBudgetStops(t *testing.T) {
	m, sb := newReader(t, pool(), 3)
	if _, err := m.Exclusive(sb, 2, 1000); !errors.Is(err, ErrBudget) {
		t.Fatalf("Exclusive with a budget of 3 nodes = %v, want ErrBudget", err)
	}
}

func TestRunsMergeConsecutiveBlocks(t *testing.T) {
	got := fmt.Sprint(Runs([]uint64{1, 2, 3, 7, 9, 10}))
	if got != "[{1 3} {7 1} {9 2}]" {
		t.Fatalf("Runs = %s", got)
	}
	if len(Runs(nil)) != 0 {
		t.Fatal("Runs(nil) is not empty")
	}
}

// Every mismatch is an error of class ErrCorrupt, never a guess.
func TestCorruptMetadataIsRefused(t *testing.T) {
	tests := []struct {
		name  string
		spoil func(im image)
		want  string
	}{
		{"a flipped bit in a node fails its checksum", func(im image) { im[21][100] ^= 1 }, "checksum"},
		{"a node at the wrong place", func(im image) { im[21] = nodeBytes(22, true, []uint64{5}, []uint64{pack(200)}) }, "says it is block 22"},
		{"a node with both flags", func(im image) { le.PutUint32(im[21][4:], 3); reseal(im[21]) }, "neither internal"},
		{"a node with no flag", func(im image) { le.PutUint32(im[21][4:], 0); reseal(im[21]) }, "neither internal"},
		{"more entries than fit", func(im image) { le.PutUint32(im[21][16:], 253); reseal(im[21]) }, "at most 252"},
		{"max_entries beyond the block", func(im image) { le.PutUint32(im[21][20:], 300); reseal(im[21]) }, "does not fit"},
		{"a value size other than 8", func(im image) { le.PutUint32(im[21][24:], 16); reseal(im[21]) }, "value size 16"},
		{"keys out of order", func(im image) { im[21] = nodeBytes(21, true, []uint64{9, 5}, []uint64{pack(1), pack(2)}) }, "does not follow"},
		{"a child with keys outside its range", func(im image) {
			im[21] = nodeBytes(21, true, []uint64{1, 5}, []uint64{pack(1), pack(2)})
		}, "outside its parent's range"},
		{"a mapping beyond the data device", func(im image) {
			im[21] = nodeBytes(21, true, []uint64{5}, []uint64{pack(5000)})
		}, "beyond the pool's"},
		{"a child outside the metadata", func(im image) { im[20] = nodeBytes(20, false, []uint64{0, 5}, []uint64{11, 99}) }, "outside the metadata"},
		{"a tree that loops", func(im image) { im[20] = nodeBytes(20, false, []uint64{0, 5}, []uint64{11, 20}) }, "loops"},
		{"an internal node without entries", func(im image) { im[20] = nodeBytes(20, false, nil, nil) }, "without entries"},
		{"a missing block", func(im image) { delete(im, 21) }, "unexpected EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			im := pool()
			tt.spoil(im)
			m, sb := newReader(t, im, 0)
			_, err := m.Exclusive(sb, 2, 1000)
			if err == nil || !bytes.Contains([]byte(err.Error()), []byte(tt.want)) {
				t.Fatalf("Exclusive = %v, want an error saying %q", err, tt.want)
			}
			if tt.want != "unexpected EOF" && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%v is not ErrCorrupt", err)
			}
		})
	}
}

func TestCorruptSuperblocksAreRefused(t *testing.T) {
	good := Superblock{DataMappingRoot: 1, DeviceDetailsRoot: 2, DataBlockSize: 128, MetadataBlocks: 64}
	tests := []struct {
		name  string
		block func() []byte
		at    uint64
		want  string
	}{
		{"a flipped bit fails the checksum", func() []byte { b := superblockBytes(0, good); b[400] ^= 1; return b }, 0, "checksum"},
		{"another magic", func() []byte { b := superblockBytes(0, good); le.PutUint64(b[sbMagic:], 1); return b }, 0, "magic"},
		{"read at another block", func() []byte { return superblockBytes(0, good) }, 5, "says it is block 0"},
		{"a data block size not a multiple of 64 KiB", func() []byte {
			s := good
			s.DataBlockSize = 100
			return superblockBytes(0, s)
		}, 0, "data block size"},
		{"a root outside the metadata", func() []byte {
			s := good
			s.DataMappingRoot = 64
			return superblockBytes(0, s)
		}, 0, "outside the metadata"},
		{"a short block", func() []byte { return superblockBytes(0, good)[:100] }, 0, "100 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseSuperblock(tt.block(), tt.at)
			if err == nil || !errors.Is(err, ErrCorrupt) || !bytes.Contains([]byte(err.Error()), []byte(tt.want)) {
				t.Fatalf("ParseSuperblock = %v, want ErrCorrupt saying %q", err, tt.want)
			}
		})
	}
	s, err := ParseSuperblock(superblockBytes(0, good), 0)
	if err != nil || s.DataMappingRoot != 1 || s.DataBlockSize != 128 || s.MetadataBlocks != 64 {
		t.Fatalf("ParseSuperblock of a good block = %+v, %v", s, err)
	}
}

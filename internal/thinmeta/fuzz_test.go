package thinmeta

import (
	"testing"
)

// FuzzParseSuperblock feeds arbitrary blocks to the superblock parser: it
// must never panic, and what it accepts must check (blocknr, magic, sizes,
// roots within the metadata).
func FuzzParseSuperblock(f *testing.F) {
	f.Add(superblockBytes(0, Superblock{DataMappingRoot: 1, DeviceDetailsRoot: 2, DataBlockSize: 128, MetadataBlocks: 64}), uint64(0))
	f.Add(superblockBytes(7, Superblock{DataMappingRoot: 9, DeviceDetailsRoot: 8, HeldRoot: 3, DataBlockSize: 2097152, MetadataBlocks: 16}), uint64(7))
	f.Add(make([]byte, BlockSize), uint64(0))
	f.Fuzz(func(t *testing.T, b []byte, blocknr uint64) {
		s, err := ParseSuperblock(b, blocknr)
		if err != nil {
			return
		}
		if s.Blocknr != blocknr || s.MetadataBlocks == 0 || s.DataMappingRoot >= s.MetadataBlocks || s.HeldRoot >= s.MetadataBlocks {
			t.Fatalf("accepted a superblock that does not check: %+v", s)
		}
	})
}

// FuzzParseNode feeds arbitrary blocks to the btree node parser: it must
// never panic, and what it accepts must check (blocknr, entries within
// max_entries, strictly increasing keys).
func FuzzParseNode(f *testing.F) {
	f.Add(nodeBytes(11, true, []uint64{0, 1, 2}, []uint64{pack(1), pack(2), pack(3)}), uint64(11))
	f.Add(nodeBytes(10, false, []uint64{0, 5}, []uint64{11, 12}), uint64(10))
	f.Add(nodeBytes(1, true, nil, nil), uint64(1))
	f.Fuzz(func(t *testing.T, b []byte, blocknr uint64) {
		n, err := ParseNode(b, blocknr)
		if err != nil {
			return
		}
		if n.Blocknr != blocknr || len(n.Keys) != len(n.Values) || (!n.Leaf && len(n.Keys) == 0) {
			t.Fatalf("accepted a node that does not check: %+v", n)
		}
		for i := 1; i < len(n.Keys); i++ {
			if n.Keys[i] <= n.Keys[i-1] {
				t.Fatalf("accepted keys out of order: %v", n.Keys)
			}
		}
	})
}

// FuzzExclusive walks arbitrary bytes in place of one node of a small
// pool: the walk must end (budget, loop checks) without a panic.
func FuzzExclusive(f *testing.F) {
	f.Add(pool()[21], uint32(2))
	f.Add(pool()[20], uint32(2))
	f.Add(pool()[1], uint32(4))
	f.Fuzz(func(t *testing.T, b []byte, dev uint32) {
		im := pool()
		for _, at := range []uint64{1, 20, 21} {
			if len(b) >= 16 && le.Uint64(b[8:]) == at {
				im[at] = b
			}
		}
		m, err := NewReader(im, make([]byte, BlockSize), 64)
		if err != nil {
			t.Fatal(err)
		}
		sb, err := m.Superblock(0)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = m.Exclusive(sb, dev%8, 1000)
	})
}

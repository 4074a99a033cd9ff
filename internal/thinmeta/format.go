// Package thinmeta reads the on-disk metadata of a device-mapper thin pool,
// read-only: the superblock, the btree nodes of the persistent-data
// library, and the pool's two-level data mapping tree (thin id → the root
// of the device's tree; virtual block → data block and time). It is meant
// for a metadata snapshot (reserve_metadata_snap), the one view of the
// metadata the kernel leaves unchanged while the pool runs.
//
// The layout is the kernel's (drivers/md/dm-thin-metadata.c,
// drivers/md/persistent-data/dm-btree-internal.h, dm-btree-spine.c,
// dm-block-manager.c); docs/thin-metadata.md lists the facts and how the VM tests
// prove them against thin_dump. Every check the kernel makes when it reads
// a block is made here too, and a few more (key order, key ranges, value
// sizes, flag values, block bounds): anything that does not match is an
// error, never a guess.
package thinmeta

import (
	"encoding/binary"

	"github.com/pkg/errors"
	"github.com/thinctl/thinctl/internal/crc32c"
)

// BlockSize is the size of a metadata block in bytes (the kernel's
// THIN_METADATA_BLOCK_SIZE, 8 sectors).
const BlockSize = 4096

// SuperblockMagic is THIN_SUPERBLOCK_MAGIC.
const SuperblockMagic = 27022010

// The xor values the kernel applies to a block's crc32c
// (dm-thin-metadata.c SUPERBLOCK_CSUM_XOR, dm-btree-internal.h
// BTREE_CSUM_XOR).
const (
	superblockCsumXor = 160774
	btreeCsumXor      = 121107
)

// Node flags (dm-btree-internal.h).
const (
	internalNode = 1
	leafNode     = 2
)

// nodeHeaderSize is sizeof(struct node_header): csum, flags, blocknr,
// nr_entries, max_entries, value_size, padding.
const nodeHeaderSize = 32

// ErrCorrupt is the class of every error about the bytes read: a checksum,
// block number, magic, flag, size, order or bound that does not match.
var ErrCorrupt = errors.New("thin-pool metadata does not check")

// checksum is the kernel's dm_bm_checksum: crc32c seeded with ~0 and not
// inverted at the end (Linux's crc32c()), xored with xor. Update, like
// hash/crc32, inverts on the way in and out, hence the ^.
func checksum(b []byte, xor uint32) uint32 {
	return ^crc32c.Update(0, b) ^ xor
}

// Superblock is the part of a thin pool's superblock (struct
// thin_disk_superblock) this package uses.
type Superblock struct {
	Checksum      uint32 // of the whole block: two reads with the same one read the same block
	Blocknr       uint64 // where the block says it is (checked)
	Version       uint32
	Time          uint32
	TransactionID uint64
	// HeldRoot is the block of the held metadata root's superblock copy
	// (reserve_metadata_snap); 0 when none is held.
	HeldRoot          uint64
	DataMappingRoot   uint64 // the top level of the mapping tree
	DeviceDetailsRoot uint64
	DataBlockSize     uint32 // in 512-byte sectors
	MetadataBlockSize uint32 // in 512-byte sectors (always 8)
	MetadataBlocks    uint64 // metadata_nr_blocks
	// NeedsCheck is the kernel's "run thin_check" flag (flags bit 0).
	NeedsCheck bool
	// DataBlocks and DataUsed are the data space map's nr_blocks and
	// nr_allocated; MetadataUsed the metadata space map's nr_allocated.
	// The held metadata root's copy has them zeroed.
	DataBlocks, DataUsed, MetadataUsed uint64
}

// Offsets in struct thin_disk_superblock.
const (
	sbCsum           = 0
	sbFlags          = 4
	sbBlocknr        = 8
	sbMagic          = 32
	sbVersion        = 40
	sbTime           = 44
	sbTransactionID  = 48
	sbHeldRoot       = 56
	sbDataSpaceMap   = 64  // data space map root (128 bytes): nr_blocks, nr_allocated, ...
	sbMetaSpaceMap   = 192 // metadata space map root, the same layout
	sbDataMapping    = 320
	sbDeviceDetails  = 328
	sbDataBlockSize  = 336
	sbMetaBlockSize  = 340
	sbMetadataBlocks = 344
)

// needsCheckFlag is THIN_METADATA_NEEDS_CHECK_FLAG in the superblock's
// flags.
const needsCheckFlag = 1

// Data block sizes the kernel accepts, in sectors (dm-thin.c:
// DATA_DEV_BLOCK_SIZE_MIN_SECTORS, DATA_DEV_BLOCK_SIZE_MAX_SECTORS).
const (
	minDataBlockSize = 128     // 64 KiB
	maxDataBlockSize = 2097152 // 1 GiB
)

// ParseSuperblock checks and decodes block b, read from metadata block
// blocknr, as a thin pool superblock (the live one at block 0, or the copy
// a held metadata root holds).
func ParseSuperblock(b []byte, blocknr uint64) (Superblock, error) {
	if len(b) != BlockSize {
		return Superblock{}, errors.Wrapf(ErrCorrupt, "superblock at block %d: %d bytes, want %d", blocknr, len(b), BlockSize)
	}
	le := binary.LittleEndian
	s := Superblock{
		Checksum:          le.Uint32(b[sbCsum:]),
		Blocknr:           le.Uint64(b[sbBlocknr:]),
		Version:           le.Uint32(b[sbVersion:]),
		Time:              le.Uint32(b[sbTime:]),
		TransactionID:     le.Uint64(b[sbTransactionID:]),
		HeldRoot:          le.Uint64(b[sbHeldRoot:]),
		DataMappingRoot:   le.Uint64(b[sbDataMapping:]),
		DeviceDetailsRoot: le.Uint64(b[sbDeviceDetails:]),
		DataBlockSize:     le.Uint32(b[sbDataBlockSize:]),
		MetadataBlockSize: le.Uint32(b[sbMetaBlockSize:]),
		MetadataBlocks:    le.Uint64(b[sbMetadataBlocks:]),
		NeedsCheck:        le.Uint32(b[sbFlags:])&needsCheckFlag != 0,
		DataBlocks:        le.Uint64(b[sbDataSpaceMap:]),
		DataUsed:          le.Uint64(b[sbDataSpaceMap+8:]),
		MetadataUsed:      le.Uint64(b[sbMetaSpaceMap+8:]),
	}
	if s.Blocknr != blocknr {
		return Superblock{}, errors.Wrapf(ErrCorrupt, "superblock at block %d says it is block %d", blocknr, s.Blocknr)
	}
	if m := le.Uint64(b[sbMagic:]); m != SuperblockMagic {
		return Superblock{}, errors.Wrapf(ErrCorrupt, "superblock at block %d: magic %d, want %d", blocknr, m, SuperblockMagic)
	}
	if want, got := checksum(b[sbFlags:], superblockCsumXor), le.Uint32(b[sbCsum:]); want != got {
		return Superblock{}, errors.Wrapf(ErrCorrupt, "superblock at block %d: checksum %#x, want %#x", blocknr, got, want)
	}
	if s.MetadataBlockSize != BlockSize/512 {
		return Superblock{}, errors.Wrapf(ErrCorrupt, "superblock at block %d: metadata block size %d sectors, want %d", blocknr, s.MetadataBlockSize, BlockSize/512)
	}
	if s.DataBlockSize < minDataBlockSize || s.DataBlockSize > maxDataBlockSize || s.DataBlockSize%minDataBlockSize != 0 {
		return Superblock{}, errors.Wrapf(ErrCorrupt, "superblock at block %d: data block size %d sectors is not a multiple of %d between %d and %d", blocknr, s.DataBlockSize, minDataBlockSize, minDataBlockSize, maxDataBlockSize)
	}
	if s.DataUsed > s.DataBlocks || s.MetadataUsed > le.Uint64(b[sbMetaSpaceMap:]) {
		return Superblock{}, errors.Wrapf(ErrCorrupt, "superblock at block %d: a space map counts more blocks used than it has", blocknr)
	}
	if s.MetadataBlocks == 0 {
		return Superblock{}, errors.Wrapf(ErrCorrupt, "superblock at block %d: no metadata blocks", blocknr)
	}
	for _, r := range []struct {
		name string
		v    uint64
	}{{"data mapping root", s.DataMappingRoot}, {"device details root", s.DeviceDetailsRoot}, {"held root", s.HeldRoot}} {
		if r.v >= s.MetadataBlocks || (r.v == 0 && r.name != "held root") {
			return Superblock{}, errors.Wrapf(ErrCorrupt, "superblock at block %d: %s %d is outside the metadata (%d blocks)", blocknr, r.name, r.v, s.MetadataBlocks)
		}
	}
	return s, nil
}

// Node is one btree node with 8-byte values (every tree of the mapping:
// internal nodes hold child block numbers, the top level's leaves subtree
// roots, the bottom level's leaves packed mappings).
type Node struct {
	Blocknr uint64
	Leaf    bool
	Keys    []uint64
	Values  []uint64
}

// ParseNode checks and decodes block b, read from metadata block blocknr,
// as a btree node whose values are 8 bytes: the kernel's node_check
// (block number, checksum, max_entries fits the block, nr_entries ≤
// max_entries, internal or leaf) and, beyond it, exactly one of the two
// flags, value size 8, and strictly increasing keys.
func ParseNode(b []byte, blocknr uint64) (Node, error) {
	if len(b) != BlockSize {
		return Node{}, errors.Wrapf(ErrCorrupt, "btree node at block %d: %d bytes, want %d", blocknr, len(b), BlockSize)
	}
	le := binary.LittleEndian
	flags := le.Uint32(b[4:])
	nr := le.Uint32(b[16:])
	maxEntries := le.Uint32(b[20:])
	valueSize := le.Uint32(b[24:])
	if got := le.Uint64(b[8:]); got != blocknr {
		return Node{}, errors.Wrapf(ErrCorrupt, "btree node at block %d says it is block %d", blocknr, got)
	}
	if want, got := checksum(b[4:], btreeCsumXor), le.Uint32(b[0:]); want != got {
		return Node{}, errors.Wrapf(ErrCorrupt, "btree node at block %d: checksum %#x, want %#x", blocknr, got, want)
	}
	if valueSize != 8 {
		return Node{}, errors.Wrapf(ErrCorrupt, "btree node at block %d: value size %d, want 8", blocknr, valueSize)
	}
	if nodeHeaderSize+uint64(8+valueSize)*uint64(maxEntries) > BlockSize {
		return Node{}, errors.Wrapf(ErrCorrupt, "btree node at block %d: max_entries %d does not fit the block", blocknr, maxEntries)
	}
	if nr > maxEntries {
		return Node{}, errors.Wrapf(ErrCorrupt, "btree node at block %d: %d entries, at most %d", blocknr, nr, maxEntries)
	}
	if flags != internalNode && flags != leafNode {
		return Node{}, errors.Wrapf(ErrCorrupt, "btree node at block %d: flags %#x are neither internal (1) nor leaf (2)", blocknr, flags)
	}
	n := Node{Blocknr: blocknr, Leaf: flags == leafNode, Keys: make([]uint64, nr), Values: make([]uint64, nr)}
	if !n.Leaf && nr == 0 {
		return Node{}, errors.Wrapf(ErrCorrupt, "btree node at block %d: an internal node without entries", blocknr)
	}
	keys := b[nodeHeaderSize:]
	values := b[nodeHeaderSize+8*int(maxEntries):]
	for i := range n.Keys {
		n.Keys[i] = le.Uint64(keys[8*i:])
		n.Values[i] = le.Uint64(values[8*i:])
		if i > 0 && n.Keys[i] <= n.Keys[i-1] {
			return Node{}, errors.Wrapf(ErrCorrupt, "btree node at block %d: key %d (%d) does not follow key %d (%d)", blocknr, i, n.Keys[i], i-1, n.Keys[i-1])
		}
	}
	return n, nil
}

// Mapping is one entry of a device's tree: virtual block → data block.
type Mapping struct {
	Virtual uint64
	Data    uint64
	Time    uint32
}

// unpackMapping splits a bottom-level leaf value: the data block in the
// high 40 bits, the time it was mapped in the low 24 (dm-thin-metadata.c
// pack_block_time).
func unpackMapping(v uint64) (data uint64, time uint32) { return v >> 24, uint32(v & (1<<24 - 1)) }

package dockerdm

import (
	"encoding/binary"
	"hash/crc32"

	"github.com/pkg/errors"
)

// Superblock is what this package reads of a thin pool's metadata
// superblock (block 0 of the metadata device; the kernel's
// drivers/md/dm-thin-metadata.c lays it out).
type Superblock struct {
	// TransactionID is the pool's transaction id (set_transaction_id).
	TransactionID uint64 `json:"transaction_id"`
	// HeldRoot is the block of a reserved metadata snapshot, 0 for none.
	HeldRoot uint64 `json:"held_root"`
	// DataBlockSize is in 512-byte sectors.
	DataBlockSize uint32 `json:"data_block_size"`
	// DataBlocks and DataUsed count data blocks (space map).
	DataBlocks, DataUsed uint64
	// MetadataBlocks and MetadataUsed count 4 KiB metadata blocks.
	MetadataBlocks, MetadataUsed uint64
	// NeedsCheck is the kernel's "run thin_check" flag.
	NeedsCheck bool `json:"needs_check"`
	// Version is the metadata format version (1 or 2).
	Version uint32 `json:"version"`
}

const (
	thinMagic          = 27022010
	superblockSize     = 512
	superblockCsumXor  = 160774
	needsCheckFlag     = 1
	spaceMapRootOffset = 64  // data space map root (128 bytes)
	metaSMRootOffset   = 192 // metadata space map root
)

// ErrNotThinMetadata: block 0 is not a thin pool's superblock.
var ErrNotThinMetadata = errors.New("not thin-pool metadata")

// ParseSuperblock reads a thin pool's superblock from the first bytes of
// its metadata device and checks its magic, block number and checksum.
func ParseSuperblock(b []byte) (Superblock, error) {
	if len(b) < superblockSize {
		return Superblock{}, errors.Wrapf(ErrNotThinMetadata, "superblock is %d bytes, want %d", len(b), superblockSize)
	}
	le := binary.LittleEndian
	if le.Uint64(b[32:]) != thinMagic {
		return Superblock{}, errors.Wrap(ErrNotThinMetadata, "no thin superblock magic")
	}
	if le.Uint64(b[8:]) != 0 {
		return Superblock{}, errors.Wrapf(ErrNotThinMetadata, "superblock says it is block %d", le.Uint64(b[8:]))
	}
	// The checksum covers the 4 KiB block from byte 4 on: crc32c with the
	// kernel's seed ~0, no final inversion, xored with the superblock's salt.
	if len(b) >= 4096 {
		sum := ^crc32.Checksum(b[4:4096], crc32.MakeTable(crc32.Castagnoli)) ^ superblockCsumXor
		if want := le.Uint32(b[0:]); sum != want {
			return Superblock{}, errors.Wrapf(ErrNotThinMetadata, "superblock checksum %#x, computed %#x", want, sum)
		}
	}
	sb := Superblock{
		NeedsCheck:    le.Uint32(b[4:])&needsCheckFlag != 0,
		Version:       le.Uint32(b[40:]),
		TransactionID: le.Uint64(b[48:]),
		HeldRoot:      le.Uint64(b[56:]),
		DataBlockSize: le.Uint32(b[336:]),
	}
	sb.DataBlocks, sb.DataUsed = le.Uint64(b[spaceMapRootOffset:]), le.Uint64(b[spaceMapRootOffset+8:])
	sb.MetadataBlocks, sb.MetadataUsed = le.Uint64(b[metaSMRootOffset:]), le.Uint64(b[metaSMRootOffset+8:])
	if sb.DataBlockSize == 0 || sb.DataBlockSize%128 != 0 {
		return Superblock{}, errors.Wrapf(ErrNotThinMetadata, "data block size %d sectors", sb.DataBlockSize)
	}
	if sb.DataUsed > sb.DataBlocks || sb.MetadataUsed > sb.MetadataBlocks {
		return Superblock{}, errors.Wrap(ErrNotThinMetadata, "space map says more blocks are used than exist")
	}
	return sb, nil
}

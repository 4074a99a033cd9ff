package dockerdm

import (
	"strings"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/internal/thinmeta"
)

// Superblock is what this package reads of a thin pool's metadata
// superblock (block 0 of the metadata device; the kernel's
// drivers/md/dm-thin-metadata.c lays it out).
type Superblock struct {
	// TransactionID is the pool's transaction id (set_transaction_id).
	TransactionID uint64 `json:"transaction_id"`
	// HeldRoot is the block of the held metadata root, 0 for none.
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

// ErrNotThinMetadata: block 0 is not a thin pool's superblock.
var ErrNotThinMetadata = errors.New("not thin-pool metadata")

// ParseSuperblock reads a thin pool's superblock from the first 4 KiB of
// its metadata device and checks it (magic, block number, checksum, sizes:
// internal/thinmeta, thinctl's one reader of the metadata format).
func ParseSuperblock(b []byte) (Superblock, error) {
	if len(b) < thinmeta.BlockSize {
		return Superblock{}, errors.Wrapf(ErrNotThinMetadata, "superblock is %d bytes, want %d", len(b), thinmeta.BlockSize)
	}
	s, err := thinmeta.ParseSuperblock(b[:thinmeta.BlockSize], 0)
	if err != nil {
		// One class for the caller: thinmeta's own ("does not check")
		// gives way to this package's.
		return Superblock{}, errors.Wrap(ErrNotThinMetadata, strings.TrimSuffix(err.Error(), ": "+thinmeta.ErrCorrupt.Error()))
	}
	return Superblock{
		TransactionID:  s.TransactionID,
		HeldRoot:       s.HeldRoot,
		DataBlockSize:  s.DataBlockSize,
		DataBlocks:     s.DataBlocks,
		DataUsed:       s.DataUsed,
		MetadataBlocks: s.MetadataBlocks,
		MetadataUsed:   s.MetadataUsed,
		NeedsCheck:     s.NeedsCheck,
		Version:        s.Version,
	}, nil
}

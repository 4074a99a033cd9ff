package fs

import (
	"encoding/binary"
	"io"
	"math/bits"
	"os"

	"github.com/google/uuid"
	"github.com/pkg/errors"
)

// ProbeResult is what Probe reads from a superblock.
type ProbeResult struct {
	Type Type
	UUID string
	// Size of the filesystem in bytes as the superblock records it.
	Size uint64
}

// Superblock layout facts (include/linux/fs ext4.h and the xfs on-disk format).
const (
	// ext2/3/4: the superblock starts 1024 bytes into the device;
	// little-endian fields at these offsets inside it.
	extSuperOffset     = 1024
	extBlocksCountLo   = 0x04 // __le32 s_blocks_count_lo
	extLogBlockSize    = 0x18 // __le32, block size = 1024 << s_log_block_size
	extMagic           = 0x38 // __le16 s_magic
	extFeatureIncompat = 0x60 // __le32 s_feature_incompat
	extUUID            = 0x68 // __u8 s_uuid[16]
	extBlocksCountHi   = 0x150
	extMagicValue      = 0xEF53
	extIncompat64Bit   = 0x80 // EXT4_FEATURE_INCOMPAT_64BIT: s_blocks_count_hi is valid
	extMaxLogBlockSize = 6    // 64 KiB blocks

	// xfs: the superblock is sector 0 of allocation group 0; big-endian.
	xfsMagic     = "XFSB"
	xfsBlockSize = 4  // __be32 sb_blocksize
	xfsDBlocks   = 8  // __be64 sb_dblocks
	xfsUUID      = 32 // uuid_t sb_uuid (the user-visible UUID)

	// probeLen covers both superblocks' fields.
	probeLen = extSuperOffset + extBlocksCountHi + 4
)

// Probe reads the superblock of dev (a device or a regular file) in Go and
// reports the filesystem type, its UUID and its size. ext2 and ext3 share
// ext4's superblock and are reported as Ext4 (the ext4 driver mounts them).
// Anything else, including a device too short to hold a superblock, is
// ErrUnknownFilesystem.
func Probe(dev string) (ProbeResult, error) {
	f, err := os.Open(dev)
	if err != nil {
		return ProbeResult{}, errors.Wrap(err, "probe filesystem")
	}
	defer f.Close()
	buf := make([]byte, probeLen)
	n, err := f.ReadAt(buf, 0)
	if err != nil && err != io.EOF {
		return ProbeResult{}, errors.Wrapf(err, "probe filesystem: read superblock of %s", dev)
	}
	r, err := ProbeSuperblock(buf[:n])
	if err != nil {
		return ProbeResult{}, errors.Wrapf(err, "probe %s", dev)
	}
	return r, nil
}

// ProbeSuperblock parses the first bytes of a device (at least the first
// 1368 bytes for ext4, 48 for xfs) the way Probe does.
func ProbeSuperblock(b []byte) (ProbeResult, error) {
	if len(b) >= 4 && string(b[:4]) == xfsMagic {
		return probeXFS(b)
	}
	if len(b) >= extSuperOffset+extMagic+2 &&
		binary.LittleEndian.Uint16(b[extSuperOffset+extMagic:]) == extMagicValue {
		return probeExt(b[extSuperOffset:])
	}
	return ProbeResult{}, ErrUnknownFilesystem
}

// probeXFS reads an xfs superblock at the start of b.
func probeXFS(b []byte) (ProbeResult, error) {
	if len(b) < xfsUUID+16 {
		return ProbeResult{}, errors.Wrap(ErrUnknownFilesystem, "xfs superblock truncated")
	}
	bs := binary.BigEndian.Uint32(b[xfsBlockSize:])
	if bs < 512 || bs > 65536 || bs&(bs-1) != 0 {
		return ProbeResult{}, errors.Wrapf(ErrUnknownFilesystem, "xfs superblock has invalid block size %d", bs)
	}
	size, err := mulSize(binary.BigEndian.Uint64(b[xfsDBlocks:]), uint64(bs))
	if err != nil {
		return ProbeResult{}, errors.Wrap(err, "xfs superblock")
	}
	return ProbeResult{Type: XFS, UUID: formatUUID(b[xfsUUID:]), Size: size}, nil
}

// probeExt reads an ext2/3/4 superblock at the start of sb.
func probeExt(sb []byte) (ProbeResult, error) {
	if len(sb) < extUUID+16 {
		return ProbeResult{}, errors.Wrap(ErrUnknownFilesystem, "ext4 superblock truncated")
	}
	logbs := binary.LittleEndian.Uint32(sb[extLogBlockSize:])
	if logbs > extMaxLogBlockSize {
		return ProbeResult{}, errors.Wrapf(ErrUnknownFilesystem, "ext4 superblock has invalid block size 1024<<%d", logbs)
	}
	blocks := uint64(binary.LittleEndian.Uint32(sb[extBlocksCountLo:]))
	if binary.LittleEndian.Uint32(sb[extFeatureIncompat:])&extIncompat64Bit != 0 {
		if len(sb) < extBlocksCountHi+4 {
			return ProbeResult{}, errors.Wrap(ErrUnknownFilesystem, "ext4 superblock truncated")
		}
		blocks |= uint64(binary.LittleEndian.Uint32(sb[extBlocksCountHi:])) << 32
	}
	size, err := mulSize(blocks, 1024<<logbs)
	if err != nil {
		return ProbeResult{}, errors.Wrap(err, "ext4 superblock")
	}
	return ProbeResult{Type: Ext4, UUID: formatUUID(sb[extUUID:]), Size: size}, nil
}

// mulSize multiplies a block count by a block size, refusing zero and overflow.
func mulSize(blocks, blockSize uint64) (uint64, error) {
	hi, lo := bits.Mul64(blocks, blockSize)
	if blocks == 0 || hi != 0 {
		return 0, errors.Wrapf(ErrUnknownFilesystem, "implausible block count %d", blocks)
	}
	return lo, nil
}

// formatUUID prints the 16 bytes at the start of b in the usual 8-4-4-4-12 form.
func formatUUID(b []byte) string {
	var u uuid.UUID
	copy(u[:], b[:16])
	return u.String()
}

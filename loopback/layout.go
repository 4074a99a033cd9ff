package loopback

import (
	"bytes"
	"encoding/binary"

	"github.com/pkg/errors"
)

// Byte layout of the kernel's struct loop_info64 and struct loop_config
// (include/uapi/linux/loop.h). All fields are in the machine's byte order;
// the structs have no padding.
const (
	loNameSize = 64 // LO_NAME_SIZE
	loKeySize  = 32 // LO_KEY_SIZE

	offDevice        = 0   // __u64 lo_device
	offInode         = 8   // __u64 lo_inode
	offRdevice       = 16  // __u64 lo_rdevice
	offOffset        = 24  // __u64 lo_offset
	offSizeLimit     = 32  // __u64 lo_sizelimit
	offNumber        = 40  // __u32 lo_number
	offEncryptType   = 44  // __u32 lo_encrypt_type
	offEncryptKeyLen = 48  // __u32 lo_encrypt_key_size
	offFlags         = 52  // __u32 lo_flags
	offFileName      = 56  // __u8 lo_file_name[64]
	offCryptName     = 120 // __u8 lo_crypt_name[64]
	offEncryptKey    = 184 // __u8 lo_encrypt_key[32]
	offInit          = 216 // __u64 lo_init[2]
	loopInfo64Size   = 232

	offConfigFD        = 0                                    // __u32 fd
	offConfigBlockSize = 4                                    // __u32 block_size
	offConfigInfo      = 8                                    // struct loop_info64 info
	loopConfigSize     = offConfigInfo + loopInfo64Size + 8*8 // + __u64 __reserved[8]
)

// lo_flags bits.
const (
	flagReadOnly  = 1  // LO_FLAGS_READ_ONLY
	flagAutoclear = 4  // LO_FLAGS_AUTOCLEAR
	flagPartScan  = 8  // LO_FLAGS_PARTSCAN
	flagDirectIO  = 16 // LO_FLAGS_DIRECT_IO

	// Flags LOOP_SET_STATUS64 may change; the others come from LOOP_SET_FD
	// (read-only) or LOOP_SET_DIRECT_IO.
	setStatusFlags = flagAutoclear | flagPartScan
)

// loopInfo64 is the decoded form of struct loop_info64, limited to the
// fields thinctl reads or writes (no encryption: the kernel dropped it).
type loopInfo64 struct {
	Device    uint64
	Inode     uint64
	Rdevice   uint64
	Offset    uint64
	SizeLimit uint64
	Number    uint32
	Flags     uint32
	FileName  string
}

// encodeLoopInfo64 writes info into b (at least loopInfo64Size bytes) in the
// kernel's layout. FileName is cut to 63 bytes so that it stays
// NUL-terminated; bytes of b not covered by a field are zeroed.
func encodeLoopInfo64(b []byte, info *loopInfo64) {
	b = b[:loopInfo64Size]
	clear(b)
	ne := binary.NativeEndian
	ne.PutUint64(b[offDevice:], info.Device)
	ne.PutUint64(b[offInode:], info.Inode)
	ne.PutUint64(b[offRdevice:], info.Rdevice)
	ne.PutUint64(b[offOffset:], info.Offset)
	ne.PutUint64(b[offSizeLimit:], info.SizeLimit)
	ne.PutUint32(b[offNumber:], info.Number)
	ne.PutUint32(b[offFlags:], info.Flags)
	copy(b[offFileName:offFileName+loNameSize-1], truncateName(info.FileName))
}

// decodeLoopInfo64 reads a struct loop_info64 from b. The file name ends at
// its first NUL or after 64 bytes.
func decodeLoopInfo64(b []byte) (loopInfo64, error) {
	if len(b) < loopInfo64Size {
		return loopInfo64{}, errors.Errorf("loop_info64: %d bytes, want %d", len(b), loopInfo64Size)
	}
	ne := binary.NativeEndian
	name := b[offFileName : offFileName+loNameSize]
	if i := bytes.IndexByte(name, 0); i >= 0 {
		name = name[:i]
	}
	return loopInfo64{
		Device:    ne.Uint64(b[offDevice:]),
		Inode:     ne.Uint64(b[offInode:]),
		Rdevice:   ne.Uint64(b[offRdevice:]),
		Offset:    ne.Uint64(b[offOffset:]),
		SizeLimit: ne.Uint64(b[offSizeLimit:]),
		Number:    ne.Uint32(b[offNumber:]),
		Flags:     ne.Uint32(b[offFlags:]),
		FileName:  string(name),
	}, nil
}

// encodeLoopConfig writes a struct loop_config binding fd with info and the
// kernel's default block size (0).
func encodeLoopConfig(b []byte, fd uint32, info *loopInfo64) {
	b = b[:loopConfigSize]
	clear(b)
	binary.NativeEndian.PutUint32(b[offConfigFD:], fd)
	encodeLoopInfo64(b[offConfigInfo:], info)
}

// truncateName returns name cut to the 63 bytes lo_file_name keeps before
// its NUL terminator.
func truncateName(name string) string {
	if len(name) > loNameSize-1 {
		return name[:loNameSize-1]
	}
	return name
}

// toInfo converts the kernel's status into the exported Info.
func (li *loopInfo64) toInfo(path string, dev uint64) Info {
	return Info{
		Path:         path,
		Number:       int(li.Number),
		Dev:          dev,
		BackingFile:  li.FileName,
		BackingDev:   li.Device,
		BackingInode: li.Inode,
		Offset:       li.Offset,
		SizeLimit:    li.SizeLimit,
		ReadOnly:     li.Flags&flagReadOnly != 0,
		Autoclear:    li.Flags&flagAutoclear != 0,
		DirectIO:     li.Flags&flagDirectIO != 0,
	}
}

package loopback

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The offsets below are those of struct loop_info64 and struct loop_config in
// include/uapi/linux/loop.h: five __u64, four __u32, three byte arrays of 64,
// 64 and 32 bytes, then __u64 lo_init[2]; loop_config is two __u32 before the
// info and eight reserved __u64 after it.
func TestLayoutMatchesTheKernelHeader(t *testing.T) {
	var li unix.LoopInfo64
	var lc unix.LoopConfig
	tests := []struct {
		name      string
		ours, hdr uintptr
	}{
		{"loop_info64 is 232 bytes", loopInfo64Size, 232},
		{"lo_device is at 0", offDevice, 0},
		{"lo_inode is at 8", offInode, 8},
		{"lo_rdevice is at 16", offRdevice, 16},
		{"lo_offset is at 24", offOffset, 24},
		{"lo_sizelimit is at 32", offSizeLimit, 32},
		{"lo_number is at 40", offNumber, 40},
		{"lo_encrypt_type is at 44", offEncryptType, 44},
		{"lo_encrypt_key_size is at 48", offEncryptKeyLen, 48},
		{"lo_flags is at 52", offFlags, 52},
		{"lo_file_name is at 56", offFileName, 56},
		{"lo_crypt_name is at 120", offCryptName, 120},
		{"lo_encrypt_key is at 184", offEncryptKey, 184},
		{"lo_init is at 216", offInit, 216},
		{"loop_config is 304 bytes", loopConfigSize, 304},
		{"loop_config.fd is at 0", offConfigFD, 0},
		{"loop_config.block_size is at 4", offConfigBlockSize, 4},
		{"loop_config.info is at 8", offConfigInfo, 8},
		// golang.org/x/sys/unix generates its types from the same header:
		// a second, independent reading of it.
		{"x/sys agrees on the size of loop_info64", loopInfo64Size, unsafe.Sizeof(li)},
		{"x/sys agrees on lo_flags", offFlags, unsafe.Offsetof(li.Flags)},
		{"x/sys agrees on lo_file_name", offFileName, unsafe.Offsetof(li.File_name)},
		{"x/sys agrees on lo_init", offInit, unsafe.Offsetof(li.Init)},
		{"x/sys agrees on the size of loop_config", loopConfigSize, unsafe.Sizeof(lc)},
		{"x/sys agrees on loop_config.info", offConfigInfo, unsafe.Offsetof(lc.Info)},
		{"x/sys agrees on LO_NAME_SIZE", loNameSize, unsafe.Sizeof(li.File_name)},
		{"x/sys agrees on LO_KEY_SIZE", loKeySize, unsafe.Sizeof(li.Encrypt_key)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.ours != tt.hdr {
				t.Errorf("got %d, the header says %d", tt.ours, tt.hdr)
			}
		})
	}
}

func TestFlagValuesMatchTheKernelHeader(t *testing.T) {
	tests := []struct {
		name      string
		ours, hdr uint32
	}{
		{"LO_FLAGS_READ_ONLY is 1", flagReadOnly, 1},
		{"LO_FLAGS_AUTOCLEAR is 4", flagAutoclear, 4},
		{"LO_FLAGS_PARTSCAN is 8", flagPartScan, 8},
		{"LO_FLAGS_DIRECT_IO is 16", flagDirectIO, 16},
		{"LOOP_SET_STATUS64 may set autoclear and partscan only", setStatusFlags, unix.LOOP_SET_STATUS_SETTABLE_FLAGS},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.ours != tt.hdr {
				t.Errorf("got %d, want %d", tt.ours, tt.hdr)
			}
		})
	}
}

func TestEncodeWritesEachFieldAtItsHeaderOffset(t *testing.T) {
	in := loopInfo64{
		Device: 0x0102030405060708, Inode: 0x1112131415161718, Rdevice: 0x2122232425262728,
		Offset: 4096, SizeLimit: 1 << 30, Number: 7, Flags: flagReadOnly | flagDirectIO,
		FileName: "/var/lib/thinctl/data",
	}
	var b [loopInfo64Size]byte
	for i := range b {
		b[i] = 0xff // encode must clear what it does not set
	}
	encodeLoopInfo64(b[:], &in)

	// The same values through x/sys's struct, laid out by the Go compiler.
	var li unix.LoopInfo64
	li.Device, li.Inode, li.Rdevice = in.Device, in.Inode, in.Rdevice
	li.Offset, li.Sizelimit, li.Number, li.Flags = in.Offset, in.SizeLimit, in.Number, in.Flags
	copy(li.File_name[:], in.FileName)
	want := unsafe.Slice((*byte)(unsafe.Pointer(&li)), unsafe.Sizeof(li))
	if !bytes.Equal(b[:], want) {
		t.Fatalf("encoding differs from the header's layout:\n got %x\nwant %x", b, want)
	}
}

func TestDecodeReadsEachFieldFromItsHeaderOffset(t *testing.T) {
	b := make([]byte, loopInfo64Size)
	ne := binary.NativeEndian
	ne.PutUint64(b[0:], 2049)     // lo_device
	ne.PutUint64(b[8:], 131)      // lo_inode
	ne.PutUint64(b[16:], 7)       // lo_rdevice
	ne.PutUint64(b[24:], 512)     // lo_offset
	ne.PutUint64(b[32:], 1048576) // lo_sizelimit
	ne.PutUint32(b[40:], 12)      // lo_number
	ne.PutUint32(b[44:], 99)      // lo_encrypt_type (ignored)
	ne.PutUint32(b[52:], flagAutoclear|flagReadOnly)
	copy(b[56:], "/srv/pool/meta\x00garbage after the terminator")
	copy(b[120:], "crypt name (ignored)")
	got, err := decodeLoopInfo64(b)
	if err != nil {
		t.Fatal(err)
	}
	want := loopInfo64{Device: 2049, Inode: 131, Rdevice: 7, Offset: 512, SizeLimit: 1048576,
		Number: 12, Flags: flagAutoclear | flagReadOnly, FileName: "/srv/pool/meta"}
	if got != want {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	info := got.toInfo("/dev/loop12", unix.Mkdev(7, 12))
	if !info.ReadOnly || !info.Autoclear || info.DirectIO || info.Number != 12 || info.BackingInode != 131 {
		t.Errorf("toInfo lost flags or fields: %+v", info)
	}
}

func TestFileNames(t *testing.T) {
	long := "/" + strings.Repeat("d", 80) + "/data"
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"a short path is kept whole", "/var/lib/x.img", "/var/lib/x.img"},
		{"a path of 63 bytes is kept whole", long[:63], long[:63]},
		{"a path of 64 bytes loses its last byte to the terminator", long[:64], long[:63]},
		{"a long path is cut to 63 bytes", long, long[:63]},
		{"an empty path stays empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b [loopInfo64Size]byte
			encodeLoopInfo64(b[:], &loopInfo64{FileName: tt.in})
			if b[offFileName+loNameSize-1] != 0 {
				t.Fatal("lo_file_name is not NUL-terminated")
			}
			got, err := decodeLoopInfo64(b[:])
			if err != nil {
				t.Fatal(err)
			}
			if got.FileName != tt.want {
				t.Errorf("round trip gave %q, want %q", got.FileName, tt.want)
			}
		})
	}
}

func TestDecodeOfAFullNameWithoutTerminatorKeeps64Bytes(t *testing.T) {
	b := make([]byte, loopInfo64Size)
	copy(b[offFileName:], strings.Repeat("x", 64))
	got, err := decodeLoopInfo64(b)
	if err != nil || len(got.FileName) != 64 {
		t.Errorf("got %q, %v; want 64 bytes", got.FileName, err)
	}
}

func TestDecodeRefusesAShortBuffer(t *testing.T) {
	if _, err := decodeLoopInfo64(make([]byte, loopInfo64Size-1)); err == nil {
		t.Error("decoded 231 bytes without complaint")
	}
}

func TestLoopConfigCarriesFDAndInfo(t *testing.T) {
	var b [loopConfigSize]byte
	for i := range b {
		b[i] = 0xee
	}
	encodeLoopConfig(b[:], 42, &loopInfo64{Flags: flagDirectIO, FileName: "/f"})
	var lc unix.LoopConfig
	lc.Fd = 42
	lc.Info.Flags = flagDirectIO
	copy(lc.Info.File_name[:], "/f")
	want := unsafe.Slice((*byte)(unsafe.Pointer(&lc)), unsafe.Sizeof(lc))
	if !bytes.Equal(b[:], want) {
		t.Errorf("loop_config differs from the header's layout:\n got %x\nwant %x", b, want)
	}
}

func FuzzDecodeLoopInfo64(f *testing.F) {
	var seed [loopInfo64Size]byte
	encodeLoopInfo64(seed[:], &loopInfo64{Device: 2049, Inode: 12, Number: 3, Flags: flagReadOnly, FileName: "/tmp/a.img"})
	f.Add(seed[:])
	f.Add(make([]byte, loopInfo64Size))
	f.Add(bytes.Repeat([]byte{0xff}, loopInfo64Size))
	f.Add([]byte("short"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodeLoopInfo64(b)
		if len(b) < loopInfo64Size {
			if err == nil {
				t.Fatalf("decoded %d bytes without error", len(b))
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(got.FileName) > loNameSize || strings.IndexByte(got.FileName, 0) >= 0 {
			t.Fatalf("bad file name %q", got.FileName)
		}
		var again [loopInfo64Size]byte
		encodeLoopInfo64(again[:], &got)
		back, err := decodeLoopInfo64(again[:])
		if err != nil {
			t.Fatal(err)
		}
		got.FileName = truncateName(got.FileName)
		if back != got {
			t.Fatalf("re-encoding changed the value: %+v then %+v", got, back)
		}
	})
}

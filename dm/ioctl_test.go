package dm

import (
	"bytes"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The offsets below are those of struct dm_ioctl and struct dm_target_spec
// in include/uapi/linux/dm-ioctl.h on every Linux architecture.
func TestTheHeaderLayoutMatchesTheKernelHeader(t *testing.T) {
	var d unix.DmIoctl
	var s unix.DmTargetSpec
	cases := []struct {
		field      string
		ours, want uintptr
	}{
		{"sizeof(struct dm_ioctl)", headerSize, 312},
		{"sizeof(struct dm_ioctl) in x/sys", unsafe.Sizeof(d), 312},
		{"version", offVersion, unsafe.Offsetof(d.Version)},
		{"data_size", offDataSize, unsafe.Offsetof(d.Data_size)},
		{"data_start", offDataStart, unsafe.Offsetof(d.Data_start)},
		{"target_count", offTargetCount, unsafe.Offsetof(d.Target_count)},
		{"open_count", offOpenCount, unsafe.Offsetof(d.Open_count)},
		{"flags", offFlags, unsafe.Offsetof(d.Flags)},
		{"event_nr", offEventNr, unsafe.Offsetof(d.Event_nr)},
		{"dev", offDev, unsafe.Offsetof(d.Dev)},
		{"name", offName, 48},
		{"name in x/sys", offName, unsafe.Offsetof(d.Name)},
		{"uuid", offUUID, 176},
		{"uuid in x/sys", offUUID, unsafe.Offsetof(d.Uuid)},
		{"data", offData, 305},
		{"data in x/sys", offData, unsafe.Offsetof(d.Data)},
		{"sizeof(struct dm_target_spec)", specSize, 40},
		{"sizeof(struct dm_target_spec) in x/sys", specSize, unsafe.Sizeof(s)},
		{"spec next", specOffNext, unsafe.Offsetof(s.Next)},
		{"spec status", specOffStatus, unsafe.Offsetof(s.Status)},
		{"spec target_type", specOffType, unsafe.Offsetof(s.Target_type)},
		{"name list name", nameListHdrSize, 12},
	}
	for _, tc := range cases {
		if tc.ours != tc.want {
			t.Errorf("%s: %d, want %d", tc.field, tc.ours, tc.want)
		}
	}
	if nameLen != unix.DM_NAME_LEN || uuidLen != unix.DM_UUID_LEN || typeLen != unix.DM_MAX_TYPE_NAME {
		t.Errorf("name/uuid/type lengths %d/%d/%d differ from x/sys", nameLen, uuidLen, typeLen)
	}
}

func TestAnEncodedHeaderPutsEachFieldAtItsKernelOffset(t *testing.T) {
	h := header{
		Version: sendVersion, DataSize: 16384, DataStart: 312, TargetCount: 3, OpenCount: -2,
		Flags: 0x20001, EventNr: 0x00600000, Dev: unix.Mkdev(253, 300),
		Name: "pool", UUID: "THINCTL-1",
	}
	b := make([]byte, headerSize)
	h.encode(b)
	u32 := func(off int) uint32 { return ne.Uint32(b[off:]) }
	if u32(0) != 4 || u32(4) != 0 || u32(8) != 0 {
		t.Errorf("version bytes %v", b[:12])
	}
	if u32(12) != 16384 || u32(16) != 312 || u32(20) != 3 || int32(u32(24)) != -2 || u32(28) != 0x20001 || u32(32) != 0x00600000 {
		t.Errorf("fixed fields %v", b[12:40])
	}
	if ne.Uint64(b[40:]) != unix.Mkdev(253, 300) {
		t.Errorf("dev %x", ne.Uint64(b[40:]))
	}
	if !bytes.Equal(b[48:53], []byte("pool\x00")) || !bytes.Equal(b[176:186], []byte("THINCTL-1\x00")) {
		t.Errorf("name/uuid bytes %q %q", b[48:53], b[176:186])
	}
	back, err := decodeHeader(b)
	if err != nil || back != h {
		t.Fatalf("decode(encode(h)) = %+v, %v", back, err)
	}
	if _, err := decodeHeader(b[:311]); err == nil {
		t.Error("a 311-byte reply decoded")
	}
}

func TestAMaximalNameAndUUIDKeepTheirTerminatingNUL(t *testing.T) {
	b := make([]byte, headerSize) // zero-filled, as every request buffer is
	h := header{Name: string(bytes.Repeat([]byte("n"), MaxNameLen)), UUID: string(bytes.Repeat([]byte("u"), MaxUUIDLen))}
	h.encode(b)
	if b[offName+MaxNameLen] != 0 || b[offUUID+MaxUUIDLen] != 0 {
		t.Fatal("name or uuid overwrote its NUL")
	}
	back, _ := decodeHeader(b)
	if back.Name != h.Name || back.UUID != h.UUID {
		t.Fatal("maximal name/uuid did not round-trip")
	}
}

func TestInfoFlagsComeFromTheReplyFlags(t *testing.T) {
	cases := []struct {
		name  string
		flags uint32
		want  Info
	}{
		{"a fresh device has nothing set", 0, Info{}},
		{"a suspended read-only device", unix.DM_SUSPEND_FLAG | unix.DM_READONLY_FLAG, Info{Suspended: true, ReadOnly: true}},
		{"live and inactive tables", unix.DM_ACTIVE_PRESENT_FLAG | unix.DM_INACTIVE_PRESENT_FLAG, Info{LiveTable: true, InactiveTable: true}},
		{"a pending deferred remove", unix.DM_DEFERRED_REMOVE, Info{DeferredRemove: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := header{Flags: tc.flags}
			if got := h.info(); got != tc.want {
				t.Fatalf("info() = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestStatusSpecsAreFollowedFromTheFirstSpec(t *testing.T) {
	// Two specs laid out by hand as the kernel's retrieve_status does:
	// the second spec's offset is stored in the first spec's next,
	// counted from the start of the data area.
	data := make([]byte, 40+16+40+8)
	ne.PutUint64(data[0:], 0)
	ne.PutUint64(data[8:], 2048)
	ne.PutUint32(data[20:], 56)
	copy(data[24:], "thin-pool")
	copy(data[40:], "0 1/2 3/4\x00")
	ne.PutUint64(data[56:], 2048)
	ne.PutUint64(data[64:], 8)
	ne.PutUint32(data[76:], 104)
	copy(data[80:], "zero")
	got, err := decodeTargets(data, 2)
	if err != nil {
		t.Fatal(err)
	}
	want := []Target{{0, 2048, "thin-pool", "0 1/2 3/4"}, {2048, 8, "zero", ""}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("decodeTargets = %+v, want %+v", got, want)
	}
}

func TestDecodersRejectRepliesThatPointOutside(t *testing.T) {
	specs := kernelSpecs([]Target{{0, 8, "zero", ""}, {8, 8, "error", ""}})
	loop := append([]byte(nil), specs...)
	ne.PutUint32(loop[specOffNext:], 0) // next pointing back at itself
	cases := []struct {
		name string
		err  error
	}{
		{"more targets than bytes", func() error { _, err := decodeTargets(specs, 9); return err }()},
		{"a spec whose next does not advance", func() error { _, err := decodeTargets(loop, 2); return err }()},
		{"params without a NUL", func() error { _, err := decodeTargets(bytes.Repeat([]byte{1}, 48), 1); return err }()},
		{"a deps count beyond the reply", func() error { _, err := decodeDeps([]byte{200, 0, 0, 0, 0, 0, 0, 0}); return err }()},
		{"a truncated deps header", func() error { _, err := decodeDeps([]byte{1}); return err }()},
		{"a name list next past the end", func() error {
			b := kernelNameList(manyDevices(2), true, true)
			ne.PutUint32(b[8:], 4096)
			_, err := decodeNameList(append(make([]byte, headerSize), b...), headerSize, headerSize+len(b), true)
			return err
		}()},
		{"a version record next past the end", func() error {
			b := kernelVersions([]TargetVersion{{"a", 1, 2, 3}, {"b", 1, 2, 3}})
			ne.PutUint32(b, 999)
			_, err := decodeVersions(b)
			return err
		}()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.err == nil {
				t.Fatal("decoded without error")
			}
		})
	}
}

func TestNameListRecordsCarryUUIDsOnlyWhenFlagged(t *testing.T) {
	devs := []Device{{"a", "UUID-A", unix.Mkdev(253, 0)}, {"bbbbbbbbbbbb", "", unix.Mkdev(253, 1)}, {"c", "U", unix.Mkdev(253, 2)}}
	for _, tc := range []struct {
		name          string
		uuids, extras bool
	}{
		{"a kernel that reports uuids", true, true},
		{"a kernel with event numbers but no uuids", false, true},
		{"an old kernel with bare names", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := append(make([]byte, headerSize), kernelNameList(devs, tc.uuids, tc.extras)...)
			got, err := decodeNameList(b, headerSize, len(b), tc.extras)
			if err != nil {
				t.Fatal(err)
			}
			for i, d := range got {
				want := devs[i]
				if !tc.uuids {
					want.UUID = ""
				}
				if d != want {
					t.Errorf("record %d = %+v, want %+v", i, d, want)
				}
			}
		})
	}
}

func TestEncodedMessagesAndNamesAreNULTerminatedAndPadded(t *testing.T) {
	m := encodeMessage(8, "create_thin 1")
	if len(m) != 24 || ne.Uint64(m) != 8 || string(m[8:21]) != "create_thin 1" || m[21] != 0 {
		t.Fatalf("encodeMessage = %q", m)
	}
	if s := encodeString("new"); len(s) != 8 || string(s[:4]) != "new\x00" {
		t.Fatalf("encodeString = %q", s)
	}
}

func TestBackslashesInParametersAreDoubled(t *testing.T) {
	cases := map[string]string{"": "", "7:0 0": "7:0 0", `a\b`: `a\\b`, `\\`: `\\\\`}
	for in, want := range cases {
		if got := escapeParams(in); got != want {
			t.Errorf("escapeParams(%q) = %q, want %q", in, got, want)
		}
	}
}

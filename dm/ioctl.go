package dm

// This file knows the byte layout of the device-mapper ioctl ABI
// (include/uapi/linux/dm-ioctl.h) and nothing else: it encodes requests and
// decodes the kernel's replies. Every decoder treats the reply as untrusted
// and returns an error instead of reading out of bounds or looping.

import (
	"encoding/binary"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// Offsets and sizes of struct dm_ioctl.
const (
	offVersion     = 0
	offDataSize    = 12
	offDataStart   = 16
	offTargetCount = 20
	offOpenCount   = 24
	offFlags       = 28
	offEventNr     = 32
	offDev         = 40
	offName        = 48
	offUUID        = 176
	offData        = 305 // first byte of the 7-byte data/padding tail

	headerSize = 312 // sizeof(struct dm_ioctl), already a multiple of 8
	nameLen    = 128 // DM_NAME_LEN, including the NUL
	uuidLen    = 129 // DM_UUID_LEN, including the NUL
)

// Sizes inside the data area.
const (
	specSize        = 40 // sizeof(struct dm_target_spec)
	specOffStart    = 0
	specOffLength   = 8
	specOffStatus   = 16
	specOffNext     = 20
	specOffType     = 24
	typeLen         = 16 // DM_MAX_TYPE_NAME, including the NUL
	nameListHdrSize = 12 // dev u64 + next u32; the name follows at offset 12
	versionsHdrSize = 16 // next u32 + version[3] u32; the name follows
	depsHdrSize     = 8  // count u32 + padding u32; dev u64[count] follows
)

// The interface version we send: 4.0.0 is accepted by every v4 kernel, which
// then writes its own version back into the header.
var sendVersion = [3]uint32{4, 0, 0}

var ne = binary.NativeEndian

// header is the decoded form of struct dm_ioctl.
type header struct {
	Version     [3]uint32
	DataSize    uint32
	DataStart   uint32
	TargetCount uint32
	OpenCount   int32
	Flags       uint32
	EventNr     uint32
	Dev         uint64
	Name        string
	UUID        string
}

// encode writes h into the first headerSize bytes of b. Name and UUID must
// already be validated to fit (the caller checks; encode truncates never).
func (h *header) encode(b []byte) {
	for i, v := range h.Version {
		ne.PutUint32(b[offVersion+4*i:], v)
	}
	ne.PutUint32(b[offDataSize:], h.DataSize)
	ne.PutUint32(b[offDataStart:], h.DataStart)
	ne.PutUint32(b[offTargetCount:], h.TargetCount)
	ne.PutUint32(b[offOpenCount:], uint32(h.OpenCount))
	ne.PutUint32(b[offFlags:], h.Flags)
	ne.PutUint32(b[offEventNr:], h.EventNr)
	ne.PutUint64(b[offDev:], h.Dev)
	copy(b[offName:offName+nameLen-1], h.Name)
	copy(b[offUUID:offUUID+uuidLen-1], h.UUID)
}

// decodeHeader reads struct dm_ioctl from b.
func decodeHeader(b []byte) (header, error) {
	var h header
	if len(b) < headerSize {
		return h, fmt.Errorf("reply of %d bytes is shorter than struct dm_ioctl (%d)", len(b), headerSize)
	}
	for i := range h.Version {
		h.Version[i] = ne.Uint32(b[offVersion+4*i:])
	}
	h.DataSize = ne.Uint32(b[offDataSize:])
	h.DataStart = ne.Uint32(b[offDataStart:])
	h.TargetCount = ne.Uint32(b[offTargetCount:])
	h.OpenCount = int32(ne.Uint32(b[offOpenCount:]))
	h.Flags = ne.Uint32(b[offFlags:])
	h.EventNr = ne.Uint32(b[offEventNr:])
	h.Dev = ne.Uint64(b[offDev:])
	h.Name = cString(b[offName : offName+nameLen-1])
	h.UUID = cString(b[offUUID : offUUID+uuidLen-1])
	return h, nil
}

// data returns the reply's data area, b[data_start:data_size], clamped to b.
func (h *header) data(b []byte) ([]byte, error) {
	start, end := int(h.DataStart), int(h.DataSize)
	if end > len(b) {
		end = len(b)
	}
	if start < headerSize || start > end {
		return nil, fmt.Errorf("reply data [%d:%d) lies outside the %d-byte buffer", h.DataStart, h.DataSize, len(b))
	}
	return b[start:end], nil
}

// info converts a DM_DEV_STATUS-style reply to Info.
func (h *header) info() Info {
	return Info{
		Name:           h.Name,
		UUID:           h.UUID,
		Dev:            h.Dev,
		OpenCount:      h.OpenCount,
		EventNr:        h.EventNr,
		TargetCount:    h.TargetCount,
		Suspended:      h.Flags&unix.DM_SUSPEND_FLAG != 0,
		ReadOnly:       h.Flags&unix.DM_READONLY_FLAG != 0,
		LiveTable:      h.Flags&unix.DM_ACTIVE_PRESENT_FLAG != 0,
		InactiveTable:  h.Flags&unix.DM_INACTIVE_PRESENT_FLAG != 0,
		DeferredRemove: h.Flags&unix.DM_DEFERRED_REMOVE != 0,
	}
}

// cString returns b up to its first NUL (all of b when there is none).
func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// cStringStrict returns b up to its first NUL and false when b holds none.
func cStringStrict(b []byte) (string, bool) {
	for i, c := range b {
		if c == 0 {
			return string(b[:i]), true
		}
	}
	return "", false
}

func align8(n int) int { return (n + 7) &^ 7 }

// escapeParams doubles every backslash: the kernel splits a target's
// parameter string on white space and treats a backslash as an escape for the
// next character, so a literal backslash must be sent as two.
func escapeParams(p string) string {
	if !strings.Contains(p, `\`) {
		return p
	}
	return strings.ReplaceAll(p, `\`, `\\`)
}

// encodeTargets builds the TABLE_LOAD data area: one dm_target_spec per
// target, each followed by its NUL-terminated parameters and padded to 8
// bytes. On load, next is the distance from the current spec to the next.
func encodeTargets(targets []Target) ([]byte, error) {
	size := 0
	for i, t := range targets {
		if err := checkTarget(i, t); err != nil {
			return nil, err
		}
		size += align8(specSize + len(escapeParams(t.Params)) + 1)
	}
	b := make([]byte, size)
	off := 0
	for _, t := range targets {
		p := escapeParams(t.Params)
		n := align8(specSize + len(p) + 1)
		s := b[off : off+n]
		ne.PutUint64(s[specOffStart:], t.Start)
		ne.PutUint64(s[specOffLength:], t.Length)
		ne.PutUint32(s[specOffNext:], uint32(n))
		copy(s[specOffType:specOffType+typeLen-1], t.Type)
		copy(s[specSize:], p)
		off += n
	}
	return b, nil
}

// checkTarget rejects what the kernel would truncate or misread.
func checkTarget(i int, t Target) error {
	switch {
	case t.Type == "":
		return fmt.Errorf("target %d has no type", i)
	case len(t.Type) >= typeLen:
		return fmt.Errorf("target %d type %q is longer than %d bytes", i, t.Type, typeLen-1)
	case strings.IndexByte(t.Type, 0) >= 0:
		return fmt.Errorf("target %d type contains a NUL byte", i)
	case strings.IndexByte(t.Params, 0) >= 0:
		return fmt.Errorf("target %d parameters contain a NUL byte", i)
	case t.Length == 0:
		return fmt.Errorf("target %d has zero length", i)
	}
	return nil
}

// decodeTargets reads count dm_target_spec records from a TABLE_STATUS reply
// data area. In kernel output each spec's next is an offset from the start of
// the data area (the first spec), not from the current spec.
func decodeTargets(data []byte, count uint32) ([]Target, error) {
	if count > uint32(len(data)/specSize) {
		return nil, fmt.Errorf("reply claims %d targets but holds %d bytes of specs", count, len(data))
	}
	targets := make([]Target, 0, count)
	off := 0
	for i := uint32(0); i < count; i++ {
		if off+specSize > len(data) {
			return nil, fmt.Errorf("target %d at offset %d runs past the %d-byte reply", i, off, len(data))
		}
		s := data[off:]
		params, ok := cStringStrict(s[specSize:])
		if !ok {
			return nil, fmt.Errorf("target %d parameters are not NUL-terminated within the reply", i)
		}
		targets = append(targets, Target{
			Start:  ne.Uint64(s[specOffStart:]),
			Length: ne.Uint64(s[specOffLength:]),
			Type:   cString(s[specOffType : specOffType+typeLen-1]),
			Params: params,
		})
		if i+1 == count {
			break
		}
		next := int(ne.Uint32(s[specOffNext:]))
		if next <= off {
			return nil, fmt.Errorf("target %d: next offset %d does not move past %d", i, next, off)
		}
		off = next
	}
	return targets, nil
}

// decodeNameList reads a DM_LIST_DEVICES reply. buf is the whole reply
// buffer (alignment in the records is relative to it), start and end bound
// the data area. Each record is {dev u64, next u32, name...}, next relative
// to the record. With extras (ioctl minor >= 37) the NUL-terminated name is
// followed, at the next 8-byte boundary, by event_nr u32 and flags u32, and
// when flags has DM_NAME_LIST_FLAG_HAS_UUID by the NUL-terminated uuid at the
// 8-byte boundary after those.
func decodeNameList(buf []byte, start, end int, extras bool) ([]Device, error) {
	if start < 0 || end > len(buf) || start > end {
		return nil, fmt.Errorf("name list bounds [%d:%d) outside the %d-byte reply", start, end, len(buf))
	}
	if end-start < nameListHdrSize || ne.Uint64(buf[start:]) == 0 {
		return nil, nil // the kernel writes dev 0 when there are no devices
	}
	var devs []Device
	off := start
	for {
		if off+nameListHdrSize > end {
			return nil, fmt.Errorf("name list record at %d runs past the reply end %d", off, end)
		}
		dev := ne.Uint64(buf[off:])
		next := int(ne.Uint32(buf[off+8:]))
		recEnd := end
		if next != 0 {
			if next < nameListHdrSize+1 || off+next > end {
				return nil, fmt.Errorf("name list record at %d: next %d is out of range", off, next)
			}
			recEnd = off + next
		}
		name, ok := cStringStrict(buf[off+nameListHdrSize : recEnd])
		if !ok {
			return nil, fmt.Errorf("name list record at %d: name is not NUL-terminated", off)
		}
		d := Device{Name: name, Dev: dev}
		if extras {
			x := align8(off + nameListHdrSize + len(name) + 1)
			if x+8 <= recEnd {
				flags := ne.Uint32(buf[x+4:])
				if flags&unix.DM_NAME_LIST_FLAG_HAS_UUID != 0 {
					u, ok := cStringStrict(buf[x+8 : recEnd])
					if !ok {
						return nil, fmt.Errorf("name list record at %d: uuid is not NUL-terminated", off)
					}
					d.UUID = u
				}
			}
		}
		devs = append(devs, d)
		if next == 0 {
			return devs, nil
		}
		off += next
	}
}

// decodeVersions reads a DM_LIST_VERSIONS reply data area: records of
// {next u32, version [3]u32, name...}, next relative to the record, 0 on the
// last one.
func decodeVersions(data []byte) ([]TargetVersion, error) {
	var out []TargetVersion
	off := 0
	for off < len(data) {
		if off+versionsHdrSize > len(data) {
			return nil, fmt.Errorf("version record at %d runs past the %d-byte reply", off, len(data))
		}
		r := data[off:]
		next := int(ne.Uint32(r))
		recEnd := len(data)
		if next != 0 {
			if next <= versionsHdrSize || off+next > len(data) {
				return nil, fmt.Errorf("version record at %d: next %d is out of range", off, next)
			}
			recEnd = off + next
		}
		name, ok := cStringStrict(data[off+versionsHdrSize : recEnd])
		if !ok {
			return nil, fmt.Errorf("version record at %d: name is not NUL-terminated", off)
		}
		out = append(out, TargetVersion{Name: name, Major: ne.Uint32(r[4:]), Minor: ne.Uint32(r[8:]), Patch: ne.Uint32(r[12:])})
		if next == 0 {
			break
		}
		off += next
	}
	return out, nil
}

// decodeDeps reads a DM_TABLE_DEPS reply data area: {count u32, pad u32,
// dev u64[count]}.
func decodeDeps(data []byte) ([]uint64, error) {
	if len(data) < depsHdrSize {
		return nil, fmt.Errorf("deps reply of %d bytes is shorter than its %d-byte header", len(data), depsHdrSize)
	}
	count := uint64(ne.Uint32(data))
	if count > uint64(len(data)-depsHdrSize)/8 {
		return nil, fmt.Errorf("deps reply claims %d devices but holds %d bytes", count, len(data))
	}
	devs := make([]uint64, count)
	for i := range devs {
		devs[i] = ne.Uint64(data[depsHdrSize+8*i:])
	}
	return devs, nil
}

// encodeMessage builds the TARGET_MSG data area: {sector u64, message NUL}.
func encodeMessage(sector uint64, msg string) []byte {
	b := make([]byte, align8(8+len(msg)+1))
	ne.PutUint64(b, sector)
	copy(b[8:], msg)
	return b
}

// encodeString builds a data area holding one NUL-terminated string (the new
// name of DM_DEV_RENAME).
func encodeString(s string) []byte {
	b := make([]byte, align8(len(s)+1))
	copy(b, s)
	return b
}

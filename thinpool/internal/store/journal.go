package store

import (
	"bytes"
	"encoding/binary"

	"github.com/pkg/errors"
	"github.com/thinctl/thinctl/internal/crc32c"
)

// The store's binary files (docs/registry.md describes them byte by
// byte): "registry", every device record as of the last compaction, written atomically
// now and then, and "journal", a preallocated file of checksummed frames
// appended since, one fdatasync per durable append. This file holds their
// encoders and decoders; they work on byte slices and never touch a file,
// so the fuzz target and the torn-write tests drive them directly.

// checkFormat accepts the binary files' format versions this package reads.
func checkFormat(v uint32) error {
	if v != Version && v != formatV2 {
		return errors.Errorf("has format version %d; this version of thinpool reads versions %d and %d", v, formatV2, Version)
	}
	return nil
}

const (
	journalMagic       = "THINJRNL"
	registryMagic      = "THINREGS"
	journalHeaderSize  = 64
	registryHeaderSize = 48
	frameHeaderSize    = 40
	frameMagic         = 0x324d5246 // "FRM2" little-endian
	frameAlign         = 8
	// maxFramePayload bounds one frame: a begin and a put of a record with
	// the most labels allowed (64 KiB of labels), with room to spare.
	maxFramePayload = 256 << 10
	// scanWindow is how far beyond the chain's end a reader looks for
	// intact frames: two of the largest frames, so the frame that follows
	// a damaged one (at most one frame long) is always inside it.
	scanWindow = 2*(frameHeaderSize+maxFramePayload) + frameAlign
	// maxEntryBody bounds one entry's body in the registry file or a frame.
	maxEntryBody = maxFramePayload
)

// Entry kinds, the first byte of every entry.
const (
	entryPut   byte = 1 // body: the device record (JSON); replaces the record of its id
	entryDel   byte = 2 // body: the id; removes its record
	entryBegin byte = 3 // body: the transaction (JSON); a pool message is about to be sent
	entryEnd   byte = 4 // body: the outcome (1 byte) and the thin id (u32; absent in version 2); that transaction is over
)

// Outcomes of an end entry (informational: replay treats them alike).
const (
	endDone      byte = 1 // the message was sent and its effects are recorded
	endRefused   byte = 2 // the kernel refused the message: nothing happened
	endRecovered byte = 3 // recovery decided what the message did
)

// entry is one change in a frame or one item of the registry file.
type entry struct {
	kind byte
	body []byte
}

// appendEntry encodes one entry: kind (1 byte), body length (u32 LE), body.
func appendEntry(b []byte, kind byte, body []byte) []byte {
	b = append(b, kind)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(body)))
	return append(b, body...)
}

// endBody is an end entry's body: the outcome and the thin id of the
// transaction it ends.
func endBody(outcome byte, devID uint32) []byte {
	return binary.LittleEndian.AppendUint32([]byte{outcome}, devID)
}

// parseEntries splits a frame's payload or the registry file's body into
// entries.
// The bodies alias data.
func parseEntries(data []byte) ([]entry, error) {
	var out []entry
	for len(data) > 0 {
		if len(data) < 5 {
			return nil, errors.Errorf("an entry header is cut short (%d bytes left)", len(data))
		}
		kind, n := data[0], binary.LittleEndian.Uint32(data[1:5])
		if kind < entryPut || kind > entryEnd {
			return nil, errors.Errorf("unknown entry kind %d", kind)
		}
		if n > maxEntryBody || int64(n) > int64(len(data)-5) {
			return nil, errors.Errorf("an entry of kind %d claims %d bytes, %d are left", kind, n, len(data)-5)
		}
		out = append(out, entry{kind: kind, body: data[5 : 5+n]})
		data = data[5+n:]
	}
	return out, nil
}

// encodeJournalHeader is the journal's first journalHeaderSize bytes:
// magic, format version, header size, capacity (the file's size), and a
// CRC-32C of the bytes before it. It is written once, when the file is made.
func encodeJournalHeader(capacity int64) []byte {
	b := make([]byte, journalHeaderSize)
	copy(b, journalMagic)
	binary.LittleEndian.PutUint32(b[8:], Version)
	binary.LittleEndian.PutUint32(b[12:], journalHeaderSize)
	binary.LittleEndian.PutUint64(b[16:], uint64(capacity))
	binary.LittleEndian.PutUint32(b[24:], crc32c.Update(0, b[:24]))
	return b
}

// parseJournalHeader checks the header against the file's size and
// returns the capacity.
func parseJournalHeader(data []byte, fileSize int64) (int64, error) {
	if len(data) < journalHeaderSize {
		return 0, errors.Errorf("%d bytes long, shorter than its %d-byte header", len(data), journalHeaderSize)
	}
	if string(data[:8]) != journalMagic {
		return 0, errors.Errorf("does not start with %q", journalMagic)
	}
	if crc32c.Update(0, data[:24]) != binary.LittleEndian.Uint32(data[24:]) {
		return 0, errors.New("its header checksum does not match")
	}
	for _, c := range data[28:journalHeaderSize] {
		if c != 0 {
			return 0, errors.New("its reserved header bytes are not zero")
		}
	}
	if err := checkFormat(binary.LittleEndian.Uint32(data[8:])); err != nil {
		return 0, err
	}
	if hs := binary.LittleEndian.Uint32(data[12:]); hs != journalHeaderSize {
		return 0, errors.Errorf("has a %d-byte header, not %d", hs, journalHeaderSize)
	}
	capacity := int64(binary.LittleEndian.Uint64(data[16:]))
	if capacity != fileSize {
		return 0, errors.Errorf("is %d bytes long; its header says %d", fileSize, capacity)
	}
	return capacity, nil
}

// frame is one decoded journal frame.
type frame struct {
	off    int64  // where it starts in the journal
	end    int64  // where the next frame starts
	seq    uint64 // 1, 2, 3, ... within an epoch
	synced int64  // the offset up to which its writer knew the journal durable
	items  []entry
}

// frameSize is the bytes a frame with an n-byte payload takes, padding
// included.
func frameSize(n int) int64 {
	return int64(frameHeaderSize+n+frameAlign-1) / frameAlign * frameAlign
}

// encodeFrame lays out a frame: magic u32, payload length u32, epoch u64,
// seq u64, synced u64, CRC-32C u32 (of bytes 0-31 and the payload), a zero
// u32, the payload, zeros up to the next multiple of 8.
func encodeFrame(epoch, seq uint64, synced int64, payload []byte) []byte {
	b := make([]byte, frameSize(len(payload)))
	binary.LittleEndian.PutUint32(b[0:], frameMagic)
	binary.LittleEndian.PutUint32(b[4:], uint32(len(payload)))
	binary.LittleEndian.PutUint64(b[8:], epoch)
	binary.LittleEndian.PutUint64(b[16:], seq)
	binary.LittleEndian.PutUint64(b[24:], uint64(synced))
	copy(b[frameHeaderSize:], payload)
	c := crc32c.Update(0, b[:32])
	c = crc32c.Update(c, payload)
	binary.LittleEndian.PutUint32(b[32:], c)
	return b
}

// parseFrameAt decodes the frame at off if it is an intact frame of epoch:
// magic, length within bounds and within data, epoch, checksum, entries
// that parse. ok is false for anything else (zeros, a frame of an older
// epoch, a torn or damaged frame).
func parseFrameAt(data []byte, off int64, epoch uint64) (frame, bool) {
	if off < 0 || off+frameHeaderSize > int64(len(data)) {
		return frame{}, false
	}
	h := data[off : off+frameHeaderSize]
	if binary.LittleEndian.Uint32(h[0:]) != frameMagic || binary.LittleEndian.Uint64(h[8:]) != epoch {
		return frame{}, false
	}
	n := binary.LittleEndian.Uint32(h[4:])
	if n == 0 || n > maxFramePayload || off+frameSize(int(n)) > int64(len(data)) {
		return frame{}, false
	}
	payload := data[off+frameHeaderSize : off+frameHeaderSize+int64(n)]
	c := crc32c.Update(0, h[:32])
	c = crc32c.Update(c, payload)
	if c != binary.LittleEndian.Uint32(h[32:]) || binary.LittleEndian.Uint32(h[36:]) != 0 {
		return frame{}, false
	}
	items, err := parseEntries(payload)
	if err != nil {
		return frame{}, false
	}
	return frame{off: off, end: off + frameSize(int(n)), seq: binary.LittleEndian.Uint64(h[16:]),
		synced: int64(binary.LittleEndian.Uint64(h[24:])), items: items}, true
}

// journalScan is what scanJournal found.
type journalScan struct {
	frames []frame
	// tail is where the next frame goes: the end of the last intact frame
	// of the chain.
	tail int64
	// torn is the end of the last intact frame of this epoch found beyond
	// tail (the remains of writes no fdatasync completed), 0 when none. The
	// bytes [tail, torn) must be zeroed durably before the next append, so
	// that a later chain can never run into them.
	torn int64
}

// scanJournal decodes the chain of frames of epoch that starts after the
// header: seq 1, 2, 3, ... each at the end of the one before. The chain
// ends at the first position without such a frame. What lies beyond is the
// tail of a write that did not complete (ignored, and reported in torn) or
// stale frames of older epochs — unless some intact frame of this epoch
// within scanWindow beyond it records that the journal was durable past
// the chain's end: its writer saw the missing frames on disk, so they were
// damaged later, and that is corruption (an error giving the offset). data
// may be a prefix of the journal that holds the chain and the window.
func scanJournal(data []byte, epoch uint64) (journalScan, error) {
	var s journalScan
	pos := int64(journalHeaderSize)
	var last uint64
	for {
		f, ok := parseFrameAt(data, pos, epoch)
		if !ok || f.seq != last+1 || f.synced > pos || f.synced < journalHeaderSize {
			break
		}
		s.frames = append(s.frames, f)
		last, pos = f.seq, f.end
	}
	s.tail = pos
	hi := min(pos+scanWindow-1, int64(len(data))-frameHeaderSize) // the last offset a frame can start at
	for q := nextMagic(data, pos, hi); q >= 0; q = nextMagic(data, q+frameAlign, hi) {
		f, ok := parseFrameAt(data, q, epoch)
		if !ok {
			continue
		}
		if f.synced > pos {
			return s, errors.Errorf("the frame at offset %d is damaged or missing, yet frame %d at offset %d was written after it was durable",
				pos, f.seq, q)
		}
		s.torn = max(s.torn, f.end)
	}
	return s, nil
}

// nextMagic returns the first offset from q to hi that is a multiple of
// frameAlign and holds a frame's magic, -1 when there is none: the window
// beyond the chain is mostly zeros, and bytes.Index skips them much faster
// than trying every aligned offset.
func nextMagic(data []byte, q, hi int64) int64 {
	var m [4]byte
	binary.LittleEndian.PutUint32(m[:], frameMagic)
	for q <= hi {
		i := bytes.Index(data[q:hi+int64(len(m))], m[:])
		if i < 0 {
			return -1
		}
		c := q + int64(i)
		if c%frameAlign == 0 {
			return c
		}
		q = (c/frameAlign + 1) * frameAlign
	}
	return -1
}

// registryFile is the decoded registry file.
type registryFile struct {
	epoch uint64 // the journal frames that follow it carry this epoch
	next  uint32 // allocation hint: the next thin id to try
	items []entry
}

// encodeRegistryFile lays out the registry file: magic, format version u32, a
// zero u32, epoch u64, next thin id u32, entry count u32, body length u64,
// CRC-32C u32 (of bytes 0-39 and the body), a zero u32, the body (entries).
func encodeRegistryFile(epoch uint64, next uint32, count int, body []byte) []byte {
	b := make([]byte, registryHeaderSize, registryHeaderSize+len(body))
	copy(b, registryMagic)
	binary.LittleEndian.PutUint32(b[8:], Version)
	binary.LittleEndian.PutUint64(b[16:], epoch)
	binary.LittleEndian.PutUint32(b[24:], next)
	binary.LittleEndian.PutUint32(b[28:], uint32(count))
	binary.LittleEndian.PutUint64(b[32:], uint64(len(body)))
	c := crc32c.Update(0, b[:40])
	c = crc32c.Update(c, body)
	binary.LittleEndian.PutUint32(b[40:], c)
	return append(b, body...)
}

// parseRegistryFile decodes and checks the registry file. Any flaw is an
// error: the file is written atomically, so it is never torn.
func parseRegistryFile(data []byte) (registryFile, error) {
	var s registryFile
	if len(data) < registryHeaderSize {
		return s, errors.Errorf("%d bytes long, shorter than its %d-byte header", len(data), registryHeaderSize)
	}
	if string(data[:8]) != registryMagic {
		return s, errors.Errorf("does not start with %q", registryMagic)
	}
	if err := checkFormat(binary.LittleEndian.Uint32(data[8:])); err != nil {
		return s, err
	}
	n := binary.LittleEndian.Uint64(data[32:])
	if n != uint64(len(data)-registryHeaderSize) {
		return s, errors.Errorf("its header says %d bytes of records, the file holds %d", n, len(data)-registryHeaderSize)
	}
	c := crc32c.Update(0, data[:40])
	c = crc32c.Update(c, data[registryHeaderSize:])
	if c != binary.LittleEndian.Uint32(data[40:]) {
		return s, errors.New("its checksum does not match")
	}
	if binary.LittleEndian.Uint32(data[12:]) != 0 || binary.LittleEndian.Uint32(data[44:]) != 0 {
		return s, errors.New("its reserved header fields are not zero")
	}
	items, err := parseEntries(data[registryHeaderSize:])
	if err != nil {
		return s, err
	}
	if count := binary.LittleEndian.Uint32(data[28:]); int(count) != len(items) {
		return s, errors.Errorf("its header counts %d entries, it holds %d", count, len(items))
	}
	s.epoch, s.next, s.items = binary.LittleEndian.Uint64(data[16:]), binary.LittleEndian.Uint32(data[24:]), items
	return s, nil
}

package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/pkg/errors"
)

// FuzzRegistryDecode feeds arbitrary bytes to the version 3 decoders as a
// registry file and as a journal: no panic; a journal scan never returns a
// frame it did not verify; every refusal by the registry is
// ErrCorrupt naming the file; what is accepted passes validation;
// the input is never modified. The seed corpus is testdata/fuzz/FuzzRegistryDecode.
func FuzzRegistryDecode(f *testing.F) {
	for _, seed := range registrySeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		orig := append([]byte(nil), data...)
		if s, err := parseRegistryFile(data); err == nil {
			x := newIndex()
			if err := applyEntries(x, txSet{}, s.items, "registry"); err != nil && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("applying a registry file: %v is not ErrCorrupt", err)
			}
		}
		if _, err := parseJournalHeader(data, int64(len(data))); err == nil {
			for _, epoch := range []uint64{1, 0x0102030405060708} {
				scan, err := scanJournal(data, epoch)
				if err != nil {
					continue
				}
				pos := int64(journalHeaderSize)
				for i, fr := range scan.frames {
					if fr.off != pos || fr.seq != uint64(i+1) || fr.synced > fr.off {
						t.Fatalf("frame %d: off %d seq %d synced %d; the chain is at %d", i, fr.off, fr.seq, fr.synced, pos)
					}
					if _, ok := parseFrameAt(data, fr.off, epoch); !ok {
						t.Fatalf("frame %d at %d does not verify", i, fr.off)
					}
					pos = fr.end
				}
				if scan.tail != pos || (scan.torn != 0 && scan.torn <= scan.tail) {
					t.Fatalf("tail %d torn %d, chain end %d", scan.tail, scan.torn, pos)
				}
				open := txSet{}
				for _, fr := range scan.frames {
					if err := applyEntries(newIndex(), open, fr.items, "journal"); err != nil {
						if !errors.Is(err, ErrCorrupt) {
							t.Fatalf("applying a frame: %v is not ErrCorrupt", err)
						}
						break
					}
				}
				for id, tx := range open {
					if tx.DeviceID != id || tx.Validate() != nil {
						t.Fatalf("open transaction %d: %+v does not validate", id, tx)
					}
				}
			}
		}
		if !bytes.Equal(data, orig) {
			t.Fatal("a decoder modified its input")
		}
	})
}

// registrySeeds are valid registry files and journals and damaged ones.
func registrySeeds() [][]byte {
	d := Device{Version: RecordVersion, ID: "x", DeviceID: 2, Size: 1 << 30, Parent: "p",
		Created: time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC), Labels: map[string]string{"k": "v"}}
	rec, _ := json.Marshal(d)
	tx, _ := json.Marshal(Tx{Version: RecordVersion, Op: OpCreateSnap, DeviceID: 3, OriginDeviceID: 2, ID: "y"})
	body := appendEntry(appendEntry(nil, entryPut, rec), entryBegin, tx)
	regFile := encodeRegistryFile(1, 4, 2, body)
	j := make([]byte, 4096)
	copy(j, encodeJournalHeader(4096))
	pos := int64(journalHeaderSize)
	for i, payload := range [][]byte{appendEntry(nil, entryPut, rec), appendEntry(nil, entryDel, []byte("x")),
		appendEntry(appendEntry(nil, entryBegin, tx), entryEnd, []byte{endDone})} {
		fr := encodeFrame(1, uint64(i+1), pos, payload)
		copy(j[pos:], fr)
		pos += int64(len(fr))
	}
	torn := append([]byte(nil), j...)
	torn[pos-5] ^= 0xff
	middle := append([]byte(nil), j...)
	middle[journalHeaderSize+frameHeaderSize+2] ^= 1
	several, severalReg, last := severalOpenSeeds()
	tornAmid := append([]byte(nil), several...) // the end of the middle one torn
	tornAmid[last+frameHeaderSize] ^= 0xff
	return [][]byte{regFile, encodeRegistryFile(7, 0, 0, nil), j, torn, middle, regFile[:len(regFile)-3], nil, []byte(journalMagic), []byte(registryMagic),
		several, severalReg, tornAmid}
}

// severalOpenSeeds are a version 3 journal in which three transactions
// open and the middle one ends by its thin id (last is the offset of that
// end's frame), and a registry file holding two open transactions.
func severalOpenSeeds() (journal, regFile []byte, last int64) {
	begin := func(devID uint32) []byte {
		b, _ := json.Marshal(Tx{Version: RecordVersion, Op: OpCreateSnap, DeviceID: devID, OriginDeviceID: 2, ID: fmt.Sprintf("t%d", devID)})
		return appendEntry(nil, entryBegin, b)
	}
	j := make([]byte, 4096)
	copy(j, encodeJournalHeader(4096))
	pos := int64(journalHeaderSize)
	for i, payload := range [][]byte{begin(3), begin(4), begin(5), appendEntry(nil, entryEnd, endBody(endDone, 4))} {
		fr := encodeFrame(1, uint64(i+1), pos, payload)
		copy(j[pos:], fr)
		last = pos
		pos += int64(len(fr))
	}
	body := append(begin(3), begin(5)...)
	return j, encodeRegistryFile(1, 6, 2, body), last
}

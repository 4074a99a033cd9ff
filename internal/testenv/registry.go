package testenv

import (
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"os"
	"path/filepath"
	"sort"

	"github.com/pkg/errors"
)

// RegistryRecord is the part of a thinpool device record tests look at.
type RegistryRecord struct {
	ID       string `json:"id"`
	DeviceID uint32 `json:"device_id"`
	Deleted  bool   `json:"deleted"`
}

// ReadRegistry reads the device records of the thinpool root straight from
// its version 2 or 3 files, as docs/registry.md describes them (an oracle
// written from the document, sharing no code with thinpool): the registry
// file's put entries, then the journal's chain of frames of the same
// epoch. It takes no lock and writes nothing, so a running thinctl is not
// disturbed; a frame being written is not part of the chain yet.
func ReadRegistry(root string) ([]RegistryRecord, error) {
	docs, err := RegistryDocuments(root)
	if err != nil {
		return nil, err
	}
	out := make([]RegistryRecord, 0, len(docs))
	for id, b := range docs {
		var r RegistryRecord
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, errors.Wrapf(err, "the record of %q", id)
		}
		out = append(out, r)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].ID < out[b].ID })
	return out, nil
}

// RegistryDocuments returns each device's record (its JSON document) by
// id, read as ReadRegistry reads them.
func RegistryDocuments(root string) (map[string][]byte, error) {
	dir := filepath.Join(root, "devicemapper")
	crc := crc32.MakeTable(crc32.Castagnoli)
	snap, err := os.ReadFile(filepath.Join(dir, "registry"))
	if err != nil {
		return nil, err
	}
	if len(snap) < 48 || string(snap[:8]) != "THINREGS" || (binary.LittleEndian.Uint32(snap[8:]) != 2 && binary.LittleEndian.Uint32(snap[8:]) != 3) {
		return nil, errors.New("registry: not a version 2 or 3 registry file")
	}
	if c := crc32.Update(crc32.Checksum(snap[:40], crc), crc, snap[48:]); c != binary.LittleEndian.Uint32(snap[40:]) {
		return nil, errors.New("registry: checksum mismatch")
	}
	epoch := binary.LittleEndian.Uint64(snap[16:])
	recs := map[string][]byte{}
	apply := func(body []byte) error {
		for len(body) > 0 {
			if len(body) < 5 {
				return errors.New("an entry is cut short")
			}
			kind, n := body[0], int(binary.LittleEndian.Uint32(body[1:]))
			if 5+n > len(body) {
				return errors.New("an entry is cut short")
			}
			b := body[5 : 5+n]
			switch kind {
			case 1:
				var r RegistryRecord
				if err := json.Unmarshal(b, &r); err != nil {
					return errors.Wrap(err, "a put entry")
				}
				recs[r.ID] = append([]byte(nil), b...)
			case 2:
				delete(recs, string(b))
			}
			body = body[5+n:]
		}
		return nil
	}
	if err := apply(snap[48:]); err != nil {
		return nil, errors.Wrap(err, "registry")
	}
	j, err := os.ReadFile(filepath.Join(dir, "journal"))
	if err != nil {
		return nil, err
	}
	if len(j) < 64 || string(j[:8]) != "THINJRNL" {
		return nil, errors.New("journal: not a version 2 or 3 journal")
	}
	pos, seq := 64, uint64(1)
	for pos+40 <= len(j) {
		h := j[pos : pos+40]
		n := int(binary.LittleEndian.Uint32(h[4:]))
		if binary.LittleEndian.Uint32(h) != 0x324d5246 || binary.LittleEndian.Uint64(h[8:]) != epoch ||
			binary.LittleEndian.Uint64(h[16:]) != seq || n == 0 || pos+40+n > len(j) {
			break
		}
		payload := j[pos+40 : pos+40+n]
		if crc32.Update(crc32.Checksum(h[:32], crc), crc, payload) != binary.LittleEndian.Uint32(h[32:]) {
			break
		}
		if err := apply(payload); err != nil {
			return nil, errors.Wrapf(err, "journal frame %d", seq)
		}
		pos += (40 + n + 7) / 8 * 8
		seq++
	}
	return recs, nil
}

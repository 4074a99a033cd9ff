package dockerdm

import (
	"encoding/xml"
	"io"
	"sort"
	"strconv"

	"github.com/pkg/errors"
)

// ThinDevice is one thin device in the pool's own metadata.
type ThinDevice struct {
	ID           uint32 `json:"id"`
	MappedBlocks uint64 `json:"mapped_blocks"`
	// TransactionID is the pool's transaction id when the device was made.
	TransactionID uint64 `json:"transaction_id"`
}

// ThinDump is what ParseThinDump reads of thin_dump's XML.
type ThinDump struct {
	TransactionID uint64
	DataBlockSize uint32
	DataBlocks    uint64
	Devices       []ThinDevice
}

// ParseThinDump reads the superblock and the device elements of
// thin_dump's XML output (mappings, when present, are skipped).
func ParseThinDump(r io.Reader) (ThinDump, error) {
	var d ThinDump
	dec := xml.NewDecoder(r)
	seen := map[uint32]bool{}
	sawSuper := false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return ThinDump{}, errors.Wrap(err, "thin_dump output")
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		attrs := map[string]string{}
		for _, a := range se.Attr {
			attrs[a.Name.Local] = a.Value
		}
		num := func(name string, bits int) (uint64, error) {
			v, ok := attrs[name]
			if !ok {
				return 0, errors.Errorf("thin_dump output: <%s> without %s", se.Name.Local, name)
			}
			n, err := strconv.ParseUint(v, 10, bits)
			if err != nil {
				return 0, errors.Errorf("thin_dump output: %s=%q is not a %d-bit number", name, v, bits)
			}
			return n, nil
		}
		switch se.Name.Local {
		case "superblock":
			if sawSuper {
				return ThinDump{}, errors.New("thin_dump output has two superblocks")
			}
			sawSuper = true
			if d.TransactionID, err = num("transaction", 64); err != nil {
				return ThinDump{}, err
			}
			bs, err := num("data_block_size", 32)
			if err != nil {
				return ThinDump{}, err
			}
			d.DataBlockSize = uint32(bs)
			if d.DataBlocks, err = num("nr_data_blocks", 64); err != nil {
				return ThinDump{}, err
			}
		case "device":
			if !sawSuper {
				return ThinDump{}, errors.New("thin_dump output: <device> before <superblock>")
			}
			id, err := num("dev_id", 24)
			if err != nil {
				return ThinDump{}, err
			}
			var td ThinDevice
			td.ID = uint32(id)
			if td.MappedBlocks, err = num("mapped_blocks", 64); err != nil {
				return ThinDump{}, err
			}
			if td.TransactionID, err = num("transaction", 64); err != nil {
				return ThinDump{}, err
			}
			if seen[td.ID] {
				return ThinDump{}, errors.Errorf("thin_dump output: device %d twice", td.ID)
			}
			seen[td.ID] = true
			d.Devices = append(d.Devices, td)
			if err := dec.Skip(); err != nil {
				return ThinDump{}, errors.Wrap(err, "thin_dump output")
			}
		}
	}
	if !sawSuper {
		return ThinDump{}, errors.New("thin_dump output has no <superblock>")
	}
	sort.Slice(d.Devices, func(i, j int) bool { return d.Devices[i].ID < d.Devices[j].ID })
	return d, nil
}

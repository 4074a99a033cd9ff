// Package dmthin is the text interface of the kernel's dm-thin targets:
// the thin-pool and thin table lines thinctl loads, and the status lines
// the kernel prints for them (parsed leniently: older kernels print fewer
// fields, newer ones may add words). It knows nothing of pools, registries
// or devices beyond those lines.
package dmthin

import (
	"strconv"
	"strings"

	"github.com/pkg/errors"
)

// MetadataBlockSize is the size of a thin-pool metadata block; the pool's
// status line counts metadata in these units.
const MetadataBlockSize = 4096

// PoolStatus is one parsed thin-pool status line. Counts are in blocks:
// 4 KiB metadata blocks and data blocks of the pool's block size.
type PoolStatus struct {
	TransactionID   uint64
	MetadataUsed    uint64
	MetadataTotal   uint64
	DataUsed        uint64
	DataTotal       uint64
	HeldRoot        string // "-" when no metadata root is held
	Mode            string // "rw", "ro", "out_of_data_space"; "" when not reported
	Discard         string // "discard_passdown", "no_discard_passdown"; "" when not reported
	NoSpacePolicy   string // "error_if_no_space", "queue_if_no_space"; "" when not reported
	NeedsCheck      bool
	MetaLowWater    uint64
	HasMetaLowWater bool
	Failed          bool // the kernel printed "Fail" (or "Error")
}

// ParsePoolStatus parses the Params of a thin-pool target's status.
// Kernels before 4.x print fewer trailing fields; they are parsed when
// present and recognised by their values, not by position.
func ParsePoolStatus(line string) (PoolStatus, error) {
	var s PoolStatus
	f := strings.Fields(line)
	if len(f) == 1 && (f[0] == "Fail" || f[0] == "Error") {
		s.Failed = true
		s.Mode = "fail"
		return s, nil
	}
	if len(f) < 3 {
		return s, errors.Errorf("thin-pool status %q: want at least 3 fields, got %d", line, len(f))
	}
	var err error
	if s.TransactionID, err = strconv.ParseUint(f[0], 10, 64); err != nil {
		return s, errors.Errorf("thin-pool status %q: transaction id %q is not a number", line, f[0])
	}
	if s.MetadataUsed, s.MetadataTotal, err = parseFraction(f[1]); err != nil {
		return s, errors.Wrapf(err, "thin-pool status %q: metadata", line)
	}
	if s.DataUsed, s.DataTotal, err = parseFraction(f[2]); err != nil {
		return s, errors.Wrapf(err, "thin-pool status %q: data", line)
	}
	if len(f) > 3 {
		s.HeldRoot = f[3]
	}
	for _, tok := range f[min(len(f), 4):] {
		switch tok {
		case "rw", "ro", "out_of_data_space":
			s.Mode = tok
		case "discard_passdown", "no_discard_passdown":
			s.Discard = tok
		case "error_if_no_space", "queue_if_no_space":
			s.NoSpacePolicy = tok
		case "needs_check":
			s.NeedsCheck = true
		case "-":
		default:
			if n, err := strconv.ParseUint(tok, 10, 64); err == nil {
				s.MetaLowWater = n
				s.HasMetaLowWater = true
			}
			// Unknown words from newer kernels are ignored.
		}
	}
	return s, nil
}

// parseFraction parses "<used>/<total>" with used <= total.
func parseFraction(s string) (used, total uint64, err error) {
	a, b, ok := strings.Cut(s, "/")
	if !ok {
		return 0, 0, errors.Errorf("%q is not <used>/<total>", s)
	}
	if used, err = strconv.ParseUint(a, 10, 64); err != nil {
		return 0, 0, errors.Errorf("%q: used %q is not a number", s, a)
	}
	if total, err = strconv.ParseUint(b, 10, 64); err != nil {
		return 0, 0, errors.Errorf("%q: total %q is not a number", s, b)
	}
	if used > total {
		return 0, 0, errors.Errorf("%q: used is larger than total", s)
	}
	return used, total, nil
}

// ThinStatus is one parsed thin target status line.
type ThinStatus struct {
	MappedSectors uint64
	HighestMapped uint64
	HasHighest    bool // false when the kernel printed "-" (nothing mapped)
	Failed        bool
}

// ParseThinStatus parses "<mapped sectors> <highest mapped sector|->" or "Fail".
func ParseThinStatus(line string) (ThinStatus, error) {
	var s ThinStatus
	f := strings.Fields(line)
	if len(f) == 1 && (f[0] == "Fail" || f[0] == "Error") {
		s.Failed = true
		return s, nil
	}
	if len(f) < 1 || len(f) > 2 {
		return s, errors.Errorf("thin status %q: want \"<mapped> <highest|->\" or \"Fail\"", line)
	}
	var err error
	if s.MappedSectors, err = strconv.ParseUint(f[0], 10, 64); err != nil {
		return s, errors.Errorf("thin status %q: mapped sectors %q is not a number", line, f[0])
	}
	if len(f) == 2 && f[1] != "-" {
		if s.HighestMapped, err = strconv.ParseUint(f[1], 10, 64); err != nil {
			return s, errors.Errorf("thin status %q: highest mapped sector %q is not a number", line, f[1])
		}
		s.HasHighest = true
	}
	return s, nil
}

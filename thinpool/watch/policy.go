package watch

import (
	"fmt"

	"github.com/thinctl/thinctl/thinpool"
	"github.com/thinctl/thinctl/thinpool/internal/bytesize"
)

// WarnLevels are the used percentages at which Run warns, each once per
// crossing upwards (as dmeventd's thin plugin does).
var WarnLevels = []float64{80, 85, 90, 95}

// Default policy values.
const (
	DefaultAutoextendStep = 20.0 // percent of the current size
)

// Policy says when and how far Run grows a pool. It is pure: Decide
// reads a status and the host filesystem and returns what to do.
type Policy struct {
	// Threshold is the used percentage of data or of metadata at or
	// above which that part grows. 0, or 100 and above, turns autoextend
	// off (as LVM's thin_pool_autoextend_threshold = 100 does); warnings
	// and metrics still run.
	Threshold float64
	// Step is how much one growth adds, in percent of the current size
	// (0: DefaultAutoextendStep). A growth adds more when one step would
	// leave the part at or above Threshold.
	Step float64
	// MaxDataSize and MaxMetadataSize cap growth in bytes (0: no cap of
	// their own; loop pools stay bound by HostReserve, metadata by
	// thinpool.MaxMetadataSize).
	MaxDataSize, MaxMetadataSize uint64
	// HostReserve is the space a loop pool's growth leaves free on its
	// host filesystem, counting what the pool's sparse files may still
	// take: a growth is cut down (or refused) so that Free - Needed stays
	// at or above it.
	HostReserve uint64
}

// Autoextend says whether the policy grows pools at all.
func (w Policy) Autoextend() bool { return w.Threshold > 0 && w.Threshold < 100 }

// Input is what Decide looks at.
type Input struct {
	Status thinpool.Status
	// Host is the loop pool's host filesystem (Loop false for block
	// devices and external pools).
	Host thinpool.HostSpace
	// External is set for pools thinctl does not own: they are grown by
	// a command of the operator's (Decision.RunCommand).
	External bool
}

// Decision is what Decide asks for. A zero NewDataSize or
// NewMetadataSize means leave that part as it is.
type Decision struct {
	NewDataSize, NewMetadataSize uint64
	// RunCommand asks for the operator's thin command (external pools
	// above the threshold).
	RunCommand bool
	// DataLevel and MetadataLevel are the highest of WarnLevels each
	// part's use reached (0 below all of them).
	DataLevel, MetadataLevel float64
	// Held says why a part above the threshold is not grown (or grown
	// less than asked): at its cap, or the host filesystem's reserve.
	Held []string
	// Queue says whether writes that find the pool out of data space
	// should wait for a growth (the pool can still grow) rather than
	// fail at once.
	Queue bool
	// LowWaterBlocks is the pool table's low water mark that makes the
	// kernel raise an event when data use crosses the threshold, for the
	// data size after NewDataSize (0: leave the table's).
	LowWaterBlocks uint64
}

// Decide returns what to do for one reading of a pool.
func (w Policy) Decide(in Input) Decision {
	s := in.Status
	d := Decision{DataLevel: warnLevel(s.DataUsedPercent), MetadataLevel: warnLevel(s.MetadataUsedPercent)}
	if !w.Autoextend() || s.State == "down" || s.Failed || s.ReadOnly || s.NeedsCheck {
		return d
	}
	dataHigh, metaHigh := s.DataUsedPercent >= w.Threshold, s.MetadataUsedPercent >= w.Threshold
	if in.External {
		d.RunCommand = dataHigh || metaHigh
		d.LowWaterBlocks = w.lowWater(s.DataTotal, s.BlockSize)
		return d
	}
	budget := int64(-1) // no host bound
	if in.Host.Loop {
		budget = int64(in.Host.Free) - int64(in.Host.Needed()) - int64(w.HostReserve)
		if budget < 0 {
			budget = 0
		}
	}
	if metaHigh {
		// Metadata first: it is allocated whole and a pool out of it
		// fails, while one out of data only fails writes.
		var held string
		d.NewMetadataSize, held = w.grow("metadata", s.MetadataUsed, s.MetadataTotal, 4*thinpool.KiB,
			min(w.capOr(w.MaxMetadataSize, thinpool.MaxMetadataSize), thinpool.MaxMetadataSize), &budget)
		if held != "" {
			d.Held = append(d.Held, held)
		}
	}
	dataCap := w.capOr(w.MaxDataSize, 0)
	if dataHigh {
		var held string
		d.NewDataSize, held = w.grow("data", s.DataUsed, s.DataTotal, max(s.BlockSize, 64*thinpool.KiB), dataCap, &budget)
		if held != "" {
			d.Held = append(d.Held, held)
		}
	}
	// Writes may queue for a growth only while one can come.
	total := max(d.NewDataSize, s.DataTotal)
	d.Queue = (dataCap == 0 || total < dataCap) && budget != 0
	d.LowWaterBlocks = w.lowWater(total, s.BlockSize)
	return d
}

// lowWater is the low water mark, in blocks, that makes the kernel raise
// an event when data use of a pool of total bytes reaches the threshold
// (0 when the size is unknown).
func (w Policy) lowWater(total, blockSize uint64) uint64 {
	if blockSize == 0 || total == 0 {
		return 0
	}
	return max(1, uint64(float64(total/blockSize)*(100-w.Threshold)/100+0.5))
}

func (w Policy) capOr(c, def uint64) uint64 {
	if c == 0 {
		return def
	}
	return c
}

// grow returns the new size of a part that reached the threshold (0 when
// it cannot grow) and why it grows less than asked ("" when it does
// not). budget (-1: none) is the host space left, and is spent.
func (w Policy) grow(what string, used, total, unit, limit uint64, budget *int64) (uint64, string) {
	step := w.Step
	if step <= 0 {
		step = DefaultAutoextendStep
	}
	want := total
	for i := 0; i < 64 && (want == total || bytesize.Percent(used, want) >= w.Threshold); i++ {
		want += max(uint64(float64(want)*step/100), unit)
	}
	want = bytesize.RoundUp(want, unit)
	held := ""
	if limit != 0 && want > limit {
		want = bytesize.RoundDown(limit, unit)
		held = fmt.Sprintf("%s is capped at %s", what, bytesize.Format(limit))
	}
	if *budget >= 0 && want > total && want-total > uint64(*budget) {
		want = total + bytesize.RoundDown(uint64(*budget), unit)
		held = fmt.Sprintf("%s growth is held back by the host filesystem's reserve", what)
	}
	if want <= total {
		return 0, held
	}
	if *budget >= 0 {
		*budget -= int64(want - total)
	}
	return want, held
}

// warnLevel is the highest warning level pct reached, 0 below them all.
func warnLevel(pct float64) float64 {
	l := 0.0
	for _, w := range WarnLevels {
		if pct >= w {
			l = w
		}
	}
	return l
}

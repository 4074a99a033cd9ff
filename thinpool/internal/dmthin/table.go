package dmthin

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/dm"
	"github.com/thinctl/thinctl/thinpool/internal/bytesize"
)

// DefaultLowWater is the low water mark, in data blocks, of the pool table
// thinctl loads when nothing asks for another.
const DefaultLowWater = 32768

// PoolTable is the thin-pool table thinctl loads: block zeroing skipped,
// error_if_no_space unless QueueIfNoSpace, ignore_discard with NoDiscard.
type PoolTable struct {
	// MetaDev and DataDev are the metadata and data devices' numbers.
	MetaDev, DataDev uint64
	// DataBytes is the data device's size (rounded down to whole blocks);
	// BlockSize the pool's data block size in bytes.
	DataBytes, BlockSize uint64
	NoDiscard            bool
	// LowWaterBlocks is the low water mark (0: DefaultLowWater): the
	// kernel raises an event once when free data blocks drop to it.
	LowWaterBlocks uint64
	// QueueIfNoSpace leaves out error_if_no_space, so that writes that
	// find no free block wait (the kernel's default) instead of failing.
	QueueIfNoSpace bool
}

// Target is the table's single target.
func (t PoolTable) Target() dm.Target {
	features := []string{"skip_block_zeroing", "error_if_no_space"}
	if t.QueueIfNoSpace {
		features = features[:1] // queue_if_no_space is the kernel's default
	}
	if t.NoDiscard {
		features = append(features, "ignore_discard")
	}
	return dm.Target{
		Start:  0,
		Length: bytesize.RoundDown(t.DataBytes, t.BlockSize) / 512,
		Type:   "thin-pool",
		Params: fmt.Sprintf("%s %s %d %d %d %s", DevString(t.MetaDev), DevString(t.DataDev), t.BlockSize/512,
			lowWaterOr(t.LowWaterBlocks), len(features), strings.Join(features, " ")),
	}
}

// Tuned says whether a live thin-pool table's parameters carry the low
// water mark lowWater (0: DefaultLowWater) and the out-of-space mode
// queue asks for.
func Tuned(params string, lowWater uint64, queue bool) bool {
	f := strings.Fields(params)
	if len(f) < 4 {
		return false
	}
	errorIfNoSpace := false
	for _, x := range f[4:] {
		errorIfNoSpace = errorIfNoSpace || x == "error_if_no_space"
	}
	return f[3] == fmt.Sprint(lowWaterOr(lowWater)) && errorIfNoSpace == !queue
}

func lowWaterOr(n uint64) uint64 {
	if n == 0 {
		return DefaultLowWater
	}
	return n
}

// PoolTableDevices returns the metadata and data devices ("major:minor")
// a live thin-pool table's parameters name; false when they name none.
func PoolTableDevices(params string) (meta, data string, ok bool) {
	f := strings.Fields(params)
	if len(f) < 2 {
		return "", "", false
	}
	return f[0], f[1], true
}

// ThinTarget is the table of a thin device of size bytes with thin id
// devID in the pool device poolDev.
func ThinTarget(poolDev uint64, devID uint32, size uint64) dm.Target {
	return dm.Target{Start: 0, Length: size / 512, Type: "thin",
		Params: fmt.Sprintf("%s %d", DevString(poolDev), devID)}
}

// DevString is a device number as the kernel's tables spell it
// ("major:minor").
func DevString(dev uint64) string {
	return fmt.Sprintf("%d:%d", unix.Major(dev), unix.Minor(dev))
}

package thinpool

import (
	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/dm"
	"github.com/thinctl/thinctl/fs"
	"github.com/thinctl/thinctl/thinpool/internal/bytesize"
	"github.com/thinctl/thinctl/thinpool/internal/dmthin"
	"github.com/thinctl/thinctl/thinpool/internal/hostfs"
)

// Status is the pool's state.
type Status struct {
	PoolName          string
	TransactionID     uint64
	DataUsed          uint64
	DataTotal         uint64
	MetadataUsed      uint64
	MetadataTotal     uint64
	DataAvailable     uint64 // capped by the free space of the filesystem holding a loop file
	MetadataAvailable uint64
	ReadOnly          bool
	OutOfDataSpace    bool
	NeedsCheck        bool
	Failed            bool
	State             string // "rw", "ro", "out_of_data_space", "fail", "down"
	Devices           int
	BlockSize         uint64
	Filesystem        fs.Type
	DataFile          string
	MetadataFile      string

	// DataUsedPercent and MetadataUsedPercent are Used/Total in percent.
	DataUsedPercent     float64
	MetadataUsedPercent float64
	// DataFreePercent and MetadataFreePercent are Available/Total in
	// percent: what the minimum-free-space check compares.
	DataFreePercent     float64
	MetadataFreePercent float64
	// BaseSize is the size of the base device new devices start from.
	BaseSize uint64
	// MinFreeSpace is the percentage under which Create refuses.
	MinFreeSpace float64
	// ExternalPool is set when thinctl uses a thin pool it does not own.
	ExternalPool bool
	// ReturningDevices counts removed devices whose space is still being
	// given back (discarded) before they leave the pool; their ids are
	// already free. GC or ReturnSpace waits for them.
	ReturningDevices int
	// ReturningBytes is the space those of them that are active still map
	// (the one being discarded, or one Remove left active); the others'
	// is not known without activating them.
	ReturningBytes uint64
	// ReturnError is why this process's last background attempt to return
	// space failed ("" when it did not); it is tried again.
	ReturnError string
	// ReturnedDevices counts the removed devices whose space this Pool
	// value gave back since Open (its background return and GC alike).
	ReturnedDevices int
}

// Status reports the pool's state.
func (p *Pool) Status() (Status, error) {
	if err := p.lk.Lock(); err != nil {
		return Status{}, err
	}
	defer p.lk.Unlock()
	s, err := p.statusLocked()
	if err != nil {
		return s, err
	}
	if err := p.ensureIndex(); err != nil {
		return s, err
	}
	s.ReturningDevices, s.ReturningBytes = p.returningStatus()
	if n, err := p.store.Count(); err == nil {
		s.Devices = n - s.ReturningDevices
	}
	p.ret.mu.Lock()
	if p.ret.lastErr != nil {
		s.ReturnError = p.ret.lastErr.Error()
	}
	s.ReturnedDevices = p.ret.returned
	p.ret.mu.Unlock()
	return s, nil
}

// statusLocked is Status without the device count.
func (p *Pool) statusLocked() (Status, error) {
	s := Status{PoolName: p.cfg.PoolName, BlockSize: p.cfg.BlockSize, Filesystem: p.cfg.Filesystem,
		DataFile: p.dataFilePath(), MetadataFile: p.metaFilePath(), BaseSize: p.cfg.BaseSize,
		MinFreeSpace: p.cfg.MinFreeSpace, ExternalPool: p.cfg.ExternalPool}
	if _, err := p.dm.Info(p.cfg.PoolName); errors.Is(err, dm.ErrNotFound) {
		s.State = "down"
		return s, nil
	}
	st, err := p.rawStatus()
	if err != nil {
		return s, err
	}
	fillStatus(&s, st, p.cfg.BlockSize, hostfs.Free(p.dataFilePath()), hostfs.Free(p.metaFilePath()))
	return s, nil
}

// fillStatus converts a parsed status line into bytes and percentages.
// dataFree and metaFree (-1 for none) cap what is available: a sparse
// loop file can only grow into the free space of its filesystem.
func fillStatus(s *Status, st dmthin.PoolStatus, blockSize uint64, dataFree, metaFree int64) {
	s.TransactionID = st.TransactionID
	s.Failed = st.Failed
	s.NeedsCheck = st.NeedsCheck
	switch {
	case st.Failed:
		s.State = "fail"
		s.ReadOnly = true
		return
	case st.Mode == "":
		s.State = "rw"
	default:
		s.State = st.Mode
	}
	s.ReadOnly = st.Mode == "ro"
	s.OutOfDataSpace = st.Mode == "out_of_data_space"
	s.DataUsed, s.DataTotal = st.DataUsed*blockSize, st.DataTotal*blockSize
	s.MetadataUsed, s.MetadataTotal = st.MetadataUsed*dmthin.MetadataBlockSize, st.MetadataTotal*dmthin.MetadataBlockSize
	s.DataAvailable = capFree(s.DataTotal-s.DataUsed, dataFree)
	s.MetadataAvailable = capFree(s.MetadataTotal-s.MetadataUsed, metaFree)
	s.DataUsedPercent = bytesize.Percent(s.DataUsed, s.DataTotal)
	s.MetadataUsedPercent = bytesize.Percent(s.MetadataUsed, s.MetadataTotal)
	s.DataFreePercent = bytesize.Percent(s.DataAvailable, s.DataTotal)
	s.MetadataFreePercent = bytesize.Percent(s.MetadataAvailable, s.MetadataTotal)
}

func capFree(n uint64, free int64) uint64 {
	if free >= 0 && uint64(free) < n {
		return uint64(free)
	}
	return n
}

// checkSpace refuses new devices when the pool cannot take writes or when
// free data or metadata space is under the configured minimum.
// A requested size (0: none) larger than the pool's whole data space could
// never be filled: it is refused rather than silently over-committed.
func (p *Pool) checkSpace(id string, size uint64) error {
	s, err := p.statusLocked()
	if err != nil {
		return err
	}
	if err := spaceError(s); err != nil {
		if herr := healthOf(s, p.hostShortfall()).Refusal(); herr != nil {
			return herr
		}
		return err
	}
	if s.DataTotal > 0 && size > s.DataTotal {
		return errors.Wrapf(ErrInvalidSize, "size %s of %q is larger than the thin pool's data space %s; grow the pool's data first or ask for less",
			bytesize.Format(size), id, bytesize.Format(s.DataTotal))
	}
	return nil
}

// spaceError is the pure part of checkSpace.
func spaceError(s Status) error {
	switch {
	case s.State == "down":
		return errors.Errorf("thin pool %s is not active; bring it up first", s.PoolName)
	case s.Failed || s.ReadOnly || s.NeedsCheck:
		return healthOf(s, hostfs.Shortfall{}).Refusal()
	case s.OutOfDataSpace || s.DataFreePercent < s.MinFreeSpace:
		return errors.Wrapf(ErrLowSpace, "thin pool %s has %s of data space left (%.1f%% of %s), under the %.0f%% minimum; "+
			"grow its data or remove devices",
			s.PoolName, bytesize.Format(s.DataAvailable), s.DataFreePercent, bytesize.Format(s.DataTotal), s.MinFreeSpace)
	case s.MetadataFreePercent < s.MinFreeSpace:
		return errors.Wrapf(ErrLowSpace, "thin pool %s has %s of metadata space left (%.1f%% of %s), under the %.0f%% minimum; "+
			"grow its metadata",
			s.PoolName, bytesize.Format(s.MetadataAvailable), s.MetadataFreePercent, bytesize.Format(s.MetadataTotal), s.MinFreeSpace)
	}
	return nil
}

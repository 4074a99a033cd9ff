package thinpool

import (
	"context"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/dm"
	"github.com/thinctl/thinctl/thinpool/internal/dmthin"
)

// TableTuning is what a pool watcher (package thinpool/watch) changes in
// the pool table while it runs: the low water mark (the kernel raises an
// event once when free data blocks drop to it, again only after the next
// resume) and whether writes that find no free block queue
// (queue_if_no_space: the kernel waits up to its no_space_timeout, 60 s by
// default) instead of failing at once. The zero value is the table thinctl
// always loads.
type TableTuning struct {
	// LowWaterBlocks is the low water mark in data blocks (0: thinctl's
	// default of 32768, dmthin.DefaultLowWater).
	LowWaterBlocks uint64
	// QueueIfNoSpace makes writes wait for a growth instead of failing.
	QueueIfNoSpace bool
}

// SetTableTuning makes every later load of the pool table by this Pool
// value (Grow, Retune) carry t. It changes nothing in the kernel by
// itself.
func (p *Pool) SetTableTuning(t TableTuning) error {
	if err := p.lk.Lock(); err != nil {
		return err
	}
	p.tuning = t
	p.lk.Unlock()
	return nil
}

// Retune reloads the pool table when its low water mark or out-of-space
// mode differ from the tuning SetTableTuning set (same devices, same
// size) and says whether it did. Pools thinctl does not own are never
// reloaded.
func (p *Pool) Retune(ctx context.Context) (bool, error) {
	if err := p.lk.Lock(); err != nil {
		return false, err
	}
	defer p.lk.Unlock()
	if p.cfg.ExternalPool {
		return false, nil
	}
	ts, err := p.dm.Table(p.cfg.PoolName, dm.TableOptions{})
	if err != nil {
		return false, errors.Wrapf(err, "table of %s", p.cfg.PoolName)
	}
	if len(ts) != 1 || ts[0].Type != "thin-pool" {
		return false, errors.Errorf("%s is not a thin-pool device", p.cfg.PoolName)
	}
	if dmthin.Tuned(ts[0].Params, p.tuning.LowWaterBlocks, p.tuning.QueueIfNoSpace) {
		return false, nil
	}
	data, meta, err := p.dataAndMeta(ctx)
	if err != nil {
		return false, err
	}
	data.Size = ts[0].Length * 512 // tuning never resizes
	return true, p.reloadPool(ctx, data, meta)
}

// EventNr returns the pool device's event counter, for WaitEvent.
func (p *Pool) EventNr() (uint32, error) {
	info, err := p.dm.Info(p.cfg.PoolName)
	if err != nil {
		return 0, err
	}
	return info.EventNr, nil
}

// WaitEvent blocks until the pool device raises an event after eventNr
// (its low water mark crossed, a mode change, out of space) or ctx ends,
// and returns ctx's error then.
func (p *Pool) WaitEvent(ctx context.Context, eventNr uint32) error {
	_, err := p.dm.WaitEvent(ctx, p.cfg.PoolName, eventNr)
	return err
}

package thinpool

import (
	"context"
	"os"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/dm"
	"github.com/thinctl/thinctl/internal/failpoint"
	"github.com/thinctl/thinctl/loopback"
	"github.com/thinctl/thinctl/thinpool/internal/bytesize"
	"github.com/thinctl/thinctl/thinpool/internal/dmthin"
	"github.com/thinctl/thinctl/thinpool/internal/hostfs"
)

// Grow grows the data and/or metadata online: the loop file is extended,
// the loop device picks up the new size, and the pool's table is reloaded
// with the new length (suspend, resume). Mounted thin devices stay mounted.
// Shrinking is refused (ErrInvalidSize). For raw block devices, grow the
// device first; Grow then makes the pool use its new size.
func (p *Pool) Grow(ctx context.Context, opts GrowOptions) error {
	if err := ctx.Err(); err != nil {
		return errors.Wrap(err, "grow")
	}
	if err := p.lk.Lock(); err != nil {
		return err
	}
	defer p.lk.Unlock()
	// A long-lived Pool (pool watch) may hold sizes another process has
	// grown since: read the record again before writing it back.
	cfg, err := p.store.LoadConfig()
	if err != nil {
		return err
	}
	p.cfg = cfg
	if p.cfg.ExternalPool {
		return errors.Errorf("thin pool %s is not managed by thinctl; grow it with the tool that made it", p.cfg.PoolName)
	}
	if opts.DataSize != 0 {
		opts.DataSize = bytesize.RoundDown(opts.DataSize, p.cfg.BlockSize)
		if opts.DataSize < p.cfg.DataSize {
			return errors.Wrapf(ErrInvalidSize, "data size %s is smaller than the current %s; a thin pool cannot shrink",
				bytesize.Format(opts.DataSize), bytesize.Format(p.cfg.DataSize))
		}
	}
	if opts.MetadataSize != 0 {
		opts.MetadataSize = bytesize.RoundUp(opts.MetadataSize, 4*KiB)
		if err := validateMetadataSize(opts.MetadataSize); err != nil {
			return err
		}
		if opts.MetadataSize < p.cfg.MetadataSize {
			return errors.Wrapf(ErrInvalidSize, "metadata size %s is smaller than the current %s; metadata cannot shrink",
				bytesize.Format(opts.MetadataSize), bytesize.Format(p.cfg.MetadataSize))
		}
	}
	if p.cfg.DataFile != "" {
		p.report("growing the data and metadata files", 0.2)
		if err := growFile(p.dataFilePath(), opts.DataSize, false); err != nil {
			return err
		}
		// Metadata is allocated whole, old part included (a pool made
		// before init allocated it gets it here).
		if err := growFile(p.metaFilePath(), opts.MetadataSize, true); err != nil {
			return err
		}
		failpoint.Inject(failpoint.GrowAfterFiles)
	}
	data, meta, err := p.dataAndMeta(ctx)
	if err != nil {
		return err
	}
	if opts.DataSize > data.Size {
		return errors.Wrapf(ErrInvalidSize, "data device %s has only %s; grow it to %s first", data.Path, bytesize.Format(data.Size), bytesize.Format(opts.DataSize))
	}
	if opts.MetadataSize > meta.Size {
		return errors.Wrapf(ErrInvalidSize, "metadata device %s has only %s; grow it to %s first", meta.Path, bytesize.Format(meta.Size), bytesize.Format(opts.MetadataSize))
	}
	p.report("reloading the thin pool at its new size", 0.6)
	if err := p.reloadPool(ctx, data, meta); err != nil {
		return err
	}
	failpoint.Inject(failpoint.GrowAfterReload)
	p.cfg.DataSize, p.cfg.MetadataSize = bytesize.RoundDown(data.Size, p.cfg.BlockSize), meta.Size
	return p.store.SaveConfig(p.cfg)
}

// growFile extends a loop file to size (0: leave it), allocating all of
// it on the host filesystem when allocate is set, and tells its loop
// device. Smaller sizes are refused.
func growFile(path string, size uint64, allocate bool) error {
	if size == 0 {
		return nil
	}
	st, err := os.Stat(path)
	if err != nil {
		return errors.Wrapf(err, "stat %s", path)
	}
	cur := uint64(st.Size())
	if size < cur {
		return errors.Wrapf(ErrInvalidSize, "%s is %s; it cannot shrink to %s", path, bytesize.Format(cur), bytesize.Format(size))
	}
	if size > cur {
		if err := os.Truncate(path, int64(size)); err != nil {
			return errors.Wrapf(err, "extend %s to %s", path, bytesize.Format(size))
		}
	}
	if allocate {
		if err := hostfs.AllocateMetadata(path); err != nil {
			// The loop device still has the old size: give the file
			// that back rather than leave a sparse tail.
			_ = os.Truncate(path, int64(cur))
			return err
		}
	}
	info, err := loopback.FindByBackingFile(path)
	if err != nil {
		return errors.Wrapf(err, "loop device of %s", path)
	}
	return errors.Wrapf(loopback.SetCapacity(info.Path), "refresh the size of %s", info.Path)
}

// reloadPool loads a pool table for the current device sizes and swaps it
// in with a suspend and resume. The kernel picks up a bigger metadata
// device on resume too.
func (p *Pool) reloadPool(ctx context.Context, data, meta blockDev) error {
	name := p.cfg.PoolName
	t := dmthin.PoolTable{MetaDev: meta.Dev, DataDev: data.Dev, DataBytes: data.Size, BlockSize: p.cfg.BlockSize, NoDiscard: p.cfg.NoDiscard,
		LowWaterBlocks: p.tuning.LowWaterBlocks, QueueIfNoSpace: p.tuning.QueueIfNoSpace}.Target()
	if err := p.dm.LoadTable(name, []dm.Target{t}, dm.LoadOptions{}); err != nil {
		return errors.Wrapf(err, "load the grown table %q into %s", t.Params, name)
	}
	if err := p.dm.Suspend(name, dm.SuspendOptions{}); err != nil {
		_ = p.dm.ClearTable(name)
		return errors.Wrapf(err, "suspend %s", name)
	}
	if err := p.dm.Resume(ctx, name); err != nil {
		return errors.Wrapf(err, "resume %s with the grown table", name)
	}
	return nil
}

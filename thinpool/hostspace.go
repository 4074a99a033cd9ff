package thinpool

import (
	"context"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/thinpool/internal/hostfs"
)

// HostSpace is what the filesystem holding a loop pool's files has free
// and what the pool may still take from it (package hostfs: Needed,
// Short, MetadataSparse). Pools on block devices have Loop false and zero
// sizes.
type HostSpace = hostfs.Space

// HostSpace reports the host filesystem under the pool's loop files (a
// zero HostSpace for pools on block devices or external pools).
func (p *Pool) HostSpace() (HostSpace, error) {
	if p.cfg.DataFile == "" {
		return HostSpace{}, nil
	}
	return hostfs.Stat(p.dataFilePath(), p.metaFilePath())
}

// PreallocateOptions says which loop files Preallocate allocates.
type PreallocateOptions struct {
	// Data allocates the data file too (the metadata file always is), so
	// that no write into the pool needs space from the host filesystem.
	Data bool
}

// Preallocate allocates a loop pool's metadata file (and with opts.Data
// its data file) on the host filesystem, so that a full host filesystem
// can no longer fail the writes that go there. Pools made before thinctl
// allocated metadata at init get theirs allocated here (pool grow and pool
// watch call it). A host filesystem without room fails with an error
// wrapping unix.ENOSPC and leaves the file as it was; one that cannot
// allocate (no fallocate) with unix.EOPNOTSUPP. Pools on block devices
// have nothing to allocate.
func (p *Pool) Preallocate(ctx context.Context, opts PreallocateOptions) error {
	if err := ctx.Err(); err != nil {
		return errors.Wrap(err, "preallocate")
	}
	if p.cfg.DataFile == "" {
		return nil
	}
	if err := p.lk.Lock(); err != nil {
		return err
	}
	defer p.lk.Unlock()
	if err := hostfs.Allocate(p.metaFilePath()); err != nil {
		return err
	}
	if opts.Data {
		return hostfs.Allocate(p.dataFilePath())
	}
	return nil
}

package thinpool

import (
	"context"
	"os"
	"path/filepath"

	"github.com/pkg/errors"
	"github.com/thinctl/thinctl/thinpool/internal/units"
	"golang.org/x/sys/unix"
)

// HostSpace is what the filesystem holding a loop pool's files has free
// and what the pool may still take from it. A sparse file takes host
// space only as the pool writes into it, so a pool can promise more than
// its host filesystem holds; when that filesystem fills, the loop device
// fails the writes it cannot place (see docs/RELIABILITY.md, "Faults
// below the pool"). Pools on block devices have Loop false and zero
// sizes.
type HostSpace struct {
	Loop bool
	// Dir is the directory holding the data file.
	Dir string
	// Total and Free are the host filesystem's size and the bytes free
	// on it (statfs; Free counts root's reserve, which the loop device's
	// writes may use).
	Total, Free uint64
	// DataSize and MetadataSize are the files' sizes; DataAllocated and
	// MetadataAllocated the bytes the host filesystem has given them.
	DataSize, DataAllocated         uint64
	MetadataSize, MetadataAllocated uint64
	// SameFilesystem is false when the metadata file lives on another
	// filesystem than the data file (a pool Adopt took over); Free is
	// then the data file's filesystem's.
	SameFilesystem bool
}

// Needed is the host space the pool may still take: the unallocated part
// of both files.
func (h HostSpace) Needed() uint64 {
	return sub(h.DataSize, h.DataAllocated) + sub(h.MetadataSize, h.MetadataAllocated)
}

// Short is how much more the pool may need than the host filesystem has
// free (0 when it fits).
func (h HostSpace) Short() uint64 { return sub(h.Needed(), h.Free) }

// MetadataSparse is true when the metadata file is not fully allocated:
// a host filesystem that fills can then fail a metadata commit, which
// turns the pool read-only with needs_check.
func (h HostSpace) MetadataSparse() bool { return h.MetadataAllocated < h.MetadataSize }

func sub(a, b uint64) uint64 {
	if a > b {
		return a - b
	}
	return 0
}

// HostSpace reports the host filesystem under the pool's loop files (a
// zero HostSpace for pools on block devices or external pools).
func (p *Pool) HostSpace() (HostSpace, error) {
	if p.cfg.DataFile == "" {
		return HostSpace{}, nil
	}
	return hostSpace(p.dataFilePath(), p.metaFilePath())
}

func hostSpace(data, meta string) (HostSpace, error) {
	h := HostSpace{Loop: true, Dir: filepath.Dir(data)}
	var sfs unix.Statfs_t
	if err := unix.Statfs(data, &sfs); err != nil {
		return h, errors.Wrapf(err, "statfs %s", data)
	}
	h.Total, h.Free = sfs.Blocks*uint64(sfs.Bsize), sfs.Bfree*uint64(sfs.Bsize)
	var ds, ms unix.Stat_t
	if err := unix.Stat(data, &ds); err != nil {
		return h, errors.Wrapf(err, "stat %s", data)
	}
	if err := unix.Stat(meta, &ms); err != nil {
		return h, errors.Wrapf(err, "stat %s", meta)
	}
	h.DataSize, h.DataAllocated = uint64(ds.Size), uint64(ds.Blocks)*512
	h.MetadataSize, h.MetadataAllocated = uint64(ms.Size), uint64(ms.Blocks)*512
	h.SameFilesystem = ds.Dev == ms.Dev
	return h, nil
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
	if err := allocateFile(p.metaFilePath()); err != nil {
		return err
	}
	if opts.Data {
		return allocateFile(p.dataFilePath())
	}
	return nil
}

// allocateFile gives every byte of the file at path host blocks
// (fallocate without changing its size); already allocated ranges stay as
// they are, so it is cheap on an allocated file.
func allocateFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return errors.Wrapf(err, "open %s", path)
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return errors.Wrapf(err, "stat %s", path)
	}
	if err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_KEEP_SIZE, 0, st.Size); err != nil {
		free := fsFree(path)
		return errors.Wrapf(err, "allocate %s (%s) on the host filesystem (%s free)",
			path, units.FormatBytes(uint64(st.Size)), units.FormatBytes(uint64(max(free, 0))))
	}
	return errors.Wrapf(f.Sync(), "fsync %s", path)
}

// allocateMetadata allocates a new pool's metadata file. A host
// filesystem that cannot allocate at all (no fallocate) leaves it sparse,
// which HostSpace reports; one without room fails Init.
func allocateMetadata(path string) error {
	err := allocateFile(path)
	if errors.Is(err, unix.EOPNOTSUPP) {
		return nil
	}
	return err
}

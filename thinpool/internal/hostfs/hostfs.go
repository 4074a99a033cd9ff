// Package hostfs is the host filesystem under a loop pool's backing files:
// what it has free and what the sparse data and metadata files may still
// take from it (statfs, stat), and the calls that make those files, give
// them host blocks or take them back (fallocate: allocate, punch holes,
// checking first that the loop device maps the whole file) and make them
// durable. It knows nothing of pools beyond the files' paths.
package hostfs

import (
	"path/filepath"
	"syscall"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"
)

// Space is what the filesystem holding a loop pool's files has free
// and what the pool may still take from it. A sparse file takes host
// space only as the pool writes into it, so a pool can promise more than
// its host filesystem holds; when that filesystem fills, the loop device
// fails the writes it cannot place (see docs/RELIABILITY.md, "Faults
// below the pool"). Pools on block devices have Loop false and zero
// sizes.
type Space struct {
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
func (h Space) Needed() uint64 {
	return sub(h.DataSize, h.DataAllocated) + sub(h.MetadataSize, h.MetadataAllocated)
}

// Short is how much more the pool may need than the host filesystem has
// free (0 when it fits).
func (h Space) Short() uint64 { return sub(h.Needed(), h.Free) }

// MetadataSparse is true when the metadata file is not fully allocated:
// a host filesystem that fills can then fail a metadata commit, which
// turns the pool read-only with needs_check.
func (h Space) MetadataSparse() bool { return h.MetadataAllocated < h.MetadataSize }

func sub(a, b uint64) uint64 {
	if a > b {
		return a - b
	}
	return 0
}

// Stat reads the host filesystem under the data file data and the
// metadata file meta. On an error the Space is still marked Loop.
func Stat(data, meta string) (Space, error) {
	h := Space{Loop: true, Dir: filepath.Dir(data)}
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

// Free returns the bytes free (for root) on the filesystem holding path,
// or -1 when path is empty or unknown.
func Free(path string) int64 {
	if path == "" {
		return -1
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(path, &sfs); err != nil {
		return -1
	}
	return int64(sfs.Bfree) * sfs.Bsize
}

// Shortfall is how far the filesystem under a loop pool's files falls
// short of what the files may still grow by.
type Shortfall struct {
	Need, Free int64
	Path       string // a file on that filesystem
}

// Short compares the free space of the filesystems holding files with
// what those sparse files may still grow by (their size minus what they
// have allocated) and returns the filesystem that falls shortest; zero
// Need when every filesystem can hold it all. Files that cannot be read
// are left out.
func Short(files ...string) Shortfall {
	grow, path := map[uint64]int64{}, map[uint64]string{}
	for _, f := range files {
		var st syscall.Stat_t
		if err := syscall.Stat(f, &st); err != nil {
			continue
		}
		dev := uint64(st.Dev)
		if g := st.Size - st.Blocks*512; g > 0 {
			grow[dev] += g
		}
		if path[dev] == "" {
			path[dev] = f
		}
	}
	var worst Shortfall
	for dev, g := range grow {
		free := Free(path[dev])
		if free >= 0 && free < g && g-free > worst.Need-worst.Free {
			worst = Shortfall{Need: g, Free: free, Path: path[dev]}
		}
	}
	return worst
}

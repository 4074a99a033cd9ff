package hostfs

import (
	"os"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/fs"
	"github.com/thinctl/thinctl/internal/thinmeta"
	"github.com/thinctl/thinctl/loopback"
	"github.com/thinctl/thinctl/thinpool/internal/bytesize"
)

// Allocate gives every byte of the file at path host blocks (fallocate
// without changing its size); already allocated ranges stay as they are,
// so it is cheap on an allocated file. A host filesystem without room
// fails with an error wrapping unix.ENOSPC and leaves the file as it was;
// one that cannot allocate (no fallocate) with unix.EOPNOTSUPP.
func Allocate(path string) error {
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
		free := Free(path)
		return errors.Wrapf(err, "allocate %s (%s) on the host filesystem (%s free)",
			path, bytesize.Format(uint64(st.Size)), bytesize.Format(uint64(max(free, 0))))
	}
	return errors.Wrapf(f.Sync(), "fsync %s", path)
}

// AllocateMetadata allocates a pool's metadata file. A host filesystem
// that cannot allocate at all (no fallocate) leaves it sparse, which Stat
// reports; one without room fails.
func AllocateMetadata(path string) error {
	err := Allocate(path)
	if errors.Is(err, unix.EOPNOTSUPP) {
		return nil
	}
	return err
}

// CreateAllocated creates path (which must not exist) with size bytes
// allocated, so that a full host filesystem can never fail a write to
// it. On an error nothing is left at path; a filesystem without room
// fails with an error wrapping unix.ENOSPC.
func CreateAllocated(path string, size uint64) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return errors.Wrapf(err, "create %s", path)
	}
	defer f.Close()
	if err := unix.Fallocate(int(f.Fd()), 0, 0, int64(size)); err != nil {
		os.Remove(path)
		return errors.Wrapf(err, "allocate %s", path)
	}
	return errors.Wrapf(f.Sync(), "sync %s", path)
}

// CreateSparse creates (or truncates) path as a sparse file of size bytes,
// mode 0600, and flushes it.
func CreateSparse(path string, size uint64) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return errors.Wrapf(err, "create %s", path)
	}
	defer f.Close()
	if err := f.Chmod(0o600); err != nil {
		return errors.Wrapf(err, "chmod %s", path)
	}
	if err := f.Truncate(int64(size)); err != nil {
		return errors.Wrapf(err, "size %s to %s", path, bytesize.Format(size))
	}
	return errors.Wrapf(f.Sync(), "fsync %s", path)
}

// ZeroHead writes 4 KiB of zeros at the start of a file or device, so the
// kernel formats fresh pool metadata instead of reading stale metadata.
func ZeroHead(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return errors.Wrapf(err, "open %s", path)
	}
	defer f.Close()
	if _, err := f.WriteAt(make([]byte, 4096), 0); err != nil {
		return errors.Wrapf(err, "zero the first 4 KiB of %s", path)
	}
	return errors.Wrapf(f.Sync(), "fsync %s", path)
}

// Sync flushes what a program wrote to path.
func Sync(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return errors.Wrapf(err, "open %s", path)
	}
	defer f.Close()
	return errors.Wrapf(f.Sync(), "sync %s", path)
}

// PunchRuns punches a hole in file for each run of data blocks of
// blockBytes bytes, keeping the file's size: the filesystem frees the
// blocks, and they read back as zeros.
func PunchRuns(file string, runs []thinmeta.Run, blockBytes uint64) error {
	f, err := os.OpenFile(file, os.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return errors.Wrap(err, "open the pool's data file")
	}
	defer f.Close()
	for _, r := range runs {
		off, n := r.Start*blockBytes, r.Len*blockBytes
		if err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, int64(off), int64(n)); err != nil {
			return errors.Wrapf(err, "punch a hole in %s at %d (%d bytes)", file, off, n)
		}
	}
	return nil
}

// BoundWhole makes sure that the loop device dataDev ("major:minor") is
// bound to exactly file, from its first byte: then a hole punched in file
// is a hole in the device.
func BoundWhole(dataDev, file string) error {
	path, err := fs.DevicePath(dataDev)
	if err != nil {
		return err
	}
	li, err := loopback.GetInfo(path)
	if err != nil {
		return errors.Wrapf(err, "the pool's data device %s", path)
	}
	var st unix.Stat_t
	if err := unix.Stat(file, &st); err != nil {
		return errors.Wrapf(err, "stat %s", file)
	}
	if li.BackingDev != st.Dev || li.BackingInode != st.Ino || li.Offset != 0 {
		return errors.Errorf("the pool's data device %s is not bound to %s from offset 0", path, file)
	}
	return nil
}

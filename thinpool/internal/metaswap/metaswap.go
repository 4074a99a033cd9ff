// Package metaswap is where a repaired thin-pool metadata is written and
// how it takes the old one's place, as lvconvert --repair does it: the
// repaired metadata goes to a new, fully allocated file next to the old
// one (named <metadata>.repaired-<time>, written as <name>.partial until
// pool.json names it) or to a spare block device nothing else uses, and
// the old metadata is never written. A crash leaves either a .partial file
// pool.json does not name (RemovePartials drops it) or one it names
// (FinishPartial renames it into place).
package metaswap

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/errdefs"
	"github.com/thinctl/thinctl/internal/atomicfile"
	"github.com/thinctl/thinctl/thinpool/internal/bytesize"
	"github.com/thinctl/thinctl/thinpool/internal/devnode"
	"github.com/thinctl/thinctl/thinpool/internal/health"
	"github.com/thinctl/thinctl/thinpool/internal/hostfs"
	"github.com/thinctl/thinctl/thinpool/internal/thintools"
)

// PartialSuffix marks a repaired metadata file pool.json may not name yet.
const PartialSuffix = ".partial"

// NewFile allocates size bytes for repaired metadata in dir, next to the
// metadata file named base: it returns the file to write (target, ending
// in PartialSuffix) and the name it takes once pool.json names it (final).
// A host filesystem without room fails with health.ErrHostFilesystemFull.
func NewFile(dir, base string, size uint64, now time.Time) (target, final string, err error) {
	final = filepath.Join(dir, base+".repaired-"+now.UTC().Format("20060102T150405"))
	target = final + PartialSuffix
	if err := hostfs.CreateAllocated(target, size); err != nil {
		if errors.Is(err, unix.ENOSPC) {
			return "", "", errors.Wrapf(health.ErrHostFilesystemFull, "allocate %s for the repaired metadata in %s: the filesystem is full", bytesize.Format(size), filepath.Dir(target))
		}
		return "", "", err
	}
	return target, final, nil
}

// Rebuild runs thin_repair (the program at repair) from the metadata old
// into target, checks the result with thin_check (at check) and flushes
// it. On a failure it removes target when it is a partial file (not a
// spare device); the error is of class thintools.ErrDamaged.
func Rebuild(ctx context.Context, repair, check, old, target string, partial bool) error {
	if out, err := thintools.Run(ctx, repair, "-i", old, "-o", target); err != nil {
		if partial {
			_ = os.Remove(target)
		}
		return errors.Wrapf(thintools.ErrDamaged, "thin_repair -i %s -o %s: %v: %s", old, target, err, out)
	}
	if out, err := thintools.Run(ctx, check, target); err != nil {
		if partial {
			_ = os.Remove(target)
		}
		return errors.Wrapf(thintools.ErrDamaged, "the metadata thin_repair wrote to %s does not pass thin_check: %s", target, out)
	}
	return hostfs.Sync(target)
}

// FinishPartial renames meta+PartialSuffix to meta when only the former
// exists (a Repair switched pool.json to it and was interrupted before
// the rename) and flushes dir, the pool's directory.
func FinishPartial(meta, dir string) error {
	if _, err := os.Stat(meta); !os.IsNotExist(err) {
		return nil
	}
	if _, err := os.Stat(meta + PartialSuffix); err != nil {
		return nil
	}
	if err := os.Rename(meta+PartialSuffix, meta); err != nil {
		return errors.Wrapf(err, "finish an interrupted repair: rename %s into place", meta+PartialSuffix)
	}
	return atomicfile.SyncDir(dir)
}

// RemovePartials removes the partial repaired metadata files next to the
// metadata file named base in dir (call FinishPartial first: one pool.json
// names is not left over).
func RemovePartials(dir, base string) {
	ms, _ := filepath.Glob(filepath.Join(dir, base+"*"+PartialSuffix))
	for _, m := range ms {
		_ = os.Remove(m)
	}
}

// ValidSpare refuses a spare metadata device that is not a block device
// or is one of own (the pool's devices) or in use: it is opened
// exclusively.
func ValidSpare(spare string, own ...string) error {
	for _, used := range own {
		if a, b := sameFile(spare, used); a && b {
			return errors.Wrapf(errdefs.ErrInvalidArgument, "spare metadata device %s is one of the pool's own devices", spare)
		}
	}
	fi, err := os.Stat(spare)
	if err != nil {
		return errors.Wrapf(errdefs.ErrInvalidArgument, "spare metadata device: %v", err)
	}
	if fi.Mode()&os.ModeDevice == 0 || fi.Mode()&os.ModeCharDevice != 0 {
		return errors.Wrapf(errdefs.ErrInvalidArgument, "spare metadata device %s is not a block device", spare)
	}
	fd, err := unix.Open(spare, unix.O_RDONLY|unix.O_EXCL|unix.O_CLOEXEC, 0)
	if err != nil {
		return errors.Wrapf(devnode.ErrBusy, "spare metadata device %s is in use: %v", spare, err)
	}
	unix.Close(fd)
	return nil
}

// sameFile reports whether a and b name the same existing file; the
// second result is false when either cannot be read.
func sameFile(a, b string) (bool, bool) {
	if a == "" || b == "" {
		return false, false
	}
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	if err1 != nil || err2 != nil {
		return false, false
	}
	return os.SameFile(fa, fb), true
}

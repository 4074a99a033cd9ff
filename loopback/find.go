package loopback

import (
	"os"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"
)

// FindByBackingFile returns the loop device bound to path (matched by device
// and inode), or ErrNotFound. It walks every loop device the kernel lists,
// skipping unbound ones; with several devices bound to the same file it
// returns the lowest-numbered.
func FindByBackingFile(path string) (Info, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return Info{}, errors.Wrapf(&os.PathError{Op: "stat", Path: path, Err: err}, "loopback: find device of %s", path)
	}
	idx, err := loopIndexes()
	if err != nil {
		return Info{}, errors.Wrapf(err, "loopback: find device of %s", path)
	}
	for _, n := range idx {
		f, err := openNode(n, os.O_RDONLY)
		if err != nil {
			continue // removed meanwhile, or not ours to open
		}
		info, err := statusOf(f, "find")
		f.Close()
		if err != nil {
			continue // unbound (ENXIO) or vanished
		}
		if info.BackingDev == st.Dev && info.BackingInode == st.Ino {
			return info, nil
		}
	}
	return Info{}, errors.Wrapf(ErrNotFound, "loopback: no loop device is bound to %s (checked %d devices)", path, len(idx))
}

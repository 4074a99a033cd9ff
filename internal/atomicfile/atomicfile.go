// Package atomicfile replaces small files so that a crash or power cut at
// any instant leaves either the old contents or the new, never a mix, a
// truncated file or a stray temporary name in place of the file.
//
// Write is the one way thinctl's packages (the thin pool's registry and the
// file-level drivers' layout files) store a file they read back after a
// restart.
package atomicfile

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/pkg/errors"
)

// TempPrefix starts the name of every temporary file Write makes (".name.tmp-"
// followed by random characters), so that a reader listing the directory can
// skip them and a cleanup can remove the ones a crash left behind.
const TempPrefix = "."

// TempInfix follows the target's name in a temporary file's name.
const TempInfix = ".tmp-"

// Options tunes Write. The zero value writes a 0600 file durably.
type Options struct {
	// Perm is the file's mode; 0 means 0600.
	Perm os.FileMode
	// BeforeRename and AfterRename, when set, run just before and just
	// after the rename that publishes the file (crash tests stop there).
	BeforeRename, AfterRename func()
}

// Write replaces path with data: it writes a temporary file in the same
// directory, fsyncs it, renames it over path and fsyncs the directory, so the
// new contents are durable when Write returns. On error path is unchanged and
// the temporary file is removed.
func Write(path string, data []byte, opts Options) (err error) {
	perm := opts.Perm
	if perm == 0 {
		perm = 0o600
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, TempPrefix+base+TempInfix+"*")
	if err != nil {
		return errors.Wrapf(err, "create a temporary file for %s", path)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = tmp.Chmod(perm); err != nil {
		return errors.Wrapf(err, "chmod %s", tmp.Name())
	}
	if _, err = tmp.Write(data); err != nil {
		return errors.Wrapf(err, "write %s", tmp.Name())
	}
	if err = tmp.Sync(); err != nil {
		return errors.Wrapf(err, "fsync %s", tmp.Name())
	}
	if err = tmp.Close(); err != nil {
		return errors.Wrapf(err, "close %s", tmp.Name())
	}
	if opts.BeforeRename != nil {
		opts.BeforeRename()
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return errors.Wrapf(err, "rename %s to %s", tmp.Name(), path)
	}
	if opts.AfterRename != nil {
		opts.AfterRename()
	}
	return SyncDir(dir)
}

// SyncDir fsyncs directory dir, making the entries created, renamed or
// removed in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return errors.Wrapf(err, "open directory %s", dir)
	}
	defer d.Close()
	return errors.Wrapf(d.Sync(), "fsync directory %s", dir)
}

// IsTemp reports whether name (a base name) is one of Write's temporary
// files.
func IsTemp(name string) bool {
	return strings.HasPrefix(name, TempPrefix) && strings.Contains(name, TempInfix)
}

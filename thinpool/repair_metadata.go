package thinpool

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/errdefs"
	"github.com/thinctl/thinctl/internal/atomicfile"
	"github.com/thinctl/thinctl/internal/failpoint"
	"github.com/thinctl/thinctl/thinpool/internal/hostfs"
	"github.com/thinctl/thinctl/thinpool/internal/thintools"
	"github.com/thinctl/thinctl/thinpool/internal/units"
)

const partialSuffix = ".partial"

// removePartials removes the repaired metadata files a crashed Repair
// left that pool.json does not name (one it names is renamed into place).
func (p *Pool) removePartials() error {
	if err := p.finishPartialMetadata(); err != nil {
		return err
	}
	ms, _ := filepath.Glob(filepath.Join(p.dir, metaFileName+"*"+partialSuffix))
	for _, m := range ms {
		_ = os.Remove(m)
	}
	return nil
}

// rebuildMetadata runs thin_repair from old into fresh metadata, checks
// the result and switches pool.json to it; it returns the new metadata's
// name.
func (p *Pool) rebuildMetadata(ctx context.Context, old string, opts RepairOptions) (string, error) {
	repair, err := thintools.Find("thin_repair")
	if err != nil {
		return "", err
	}
	check, _ := thintools.Find("thin_check")
	var target, final string
	if p.cfg.DataFile != "" {
		if opts.SpareMetadataDevice != "" {
			return "", errors.Wrapf(errdefs.ErrInvalidArgument, "thin pool %s keeps its metadata in a file: a spare metadata device does not apply (the repaired metadata goes to a new file next to the old one)", p.cfg.PoolName)
		}
		name := metaFileName + ".repaired-" + time.Now().UTC().Format("20060102T150405")
		final = filepath.Join(p.dir, name)
		target = final + partialSuffix
		size := p.cfg.MetadataSize
		if fi, err := os.Stat(old); err == nil && uint64(fi.Size()) > size {
			size = uint64(fi.Size())
		}
		if err := hostfs.CreateAllocated(target, size); err != nil {
			if errors.Is(err, unix.ENOSPC) {
				return "", errors.Wrapf(ErrHostFilesystemFull, "allocate %s for the repaired metadata in %s: the filesystem is full", units.FormatBytes(size), filepath.Dir(target))
			}
			return "", err
		}
	} else {
		if opts.SpareMetadataDevice == "" {
			return "", errors.Wrapf(ErrMetadataDamaged, "thin_check found the metadata on %s damaged; thin_repair needs a spare device of at least its size to write the repaired metadata to", old)
		}
		spare, err := filepath.Abs(opts.SpareMetadataDevice)
		if err != nil {
			return "", err
		}
		if err := p.validSpare(spare); err != nil {
			return "", err
		}
		target, final = spare, spare
	}
	if out, err := thintools.Run(ctx, repair, "-i", old, "-o", target); err != nil {
		if target != final {
			_ = os.Remove(target)
		}
		return "", errors.Wrapf(ErrMetadataDamaged, "thin_repair -i %s -o %s: %v: %s", old, target, err, out)
	}
	if out, err := thintools.Run(ctx, check, target); err != nil {
		if target != final {
			_ = os.Remove(target)
		}
		return "", errors.Wrapf(ErrMetadataDamaged, "the metadata thin_repair wrote to %s does not pass thin_check: %s", target, out)
	}
	if err := hostfs.Sync(target); err != nil {
		return "", err
	}
	failpoint.Inject(failpoint.RepairAfterRepair)
	// pool.json names the new metadata before the file has its name: a
	// crash in between leaves <name>.partial, which bringing the pool up
	// renames (finishPartialMetadata); a crash before leaves a .partial
	// pool.json does not name, which the next Repair removes.
	if target != final {
		if err := atomicfile.SyncDir(p.dir); err != nil {
			return "", err
		}
	}
	cfg := p.cfg
	if cfg.DataFile != "" {
		cfg.MetadataFile = filepath.Base(final)
	} else {
		cfg.MetadataDevice = final
	}
	if err := p.store.SaveConfig(cfg); err != nil {
		return "", errors.Wrap(err, "switch pool.json to the repaired metadata")
	}
	p.cfg = cfg
	failpoint.Inject(failpoint.RepairAfterSwap)
	if err := p.finishPartialMetadata(); err != nil {
		return "", err
	}
	return final, nil
}

// finishPartialMetadata renames <metadata>.partial to the metadata file
// pool.json names when only the former exists: a Repair switched
// pool.json to it and was interrupted before the rename.
func (p *Pool) finishPartialMetadata() error {
	if p.cfg.DataFile == "" {
		return nil
	}
	meta := p.metaFilePath()
	if _, err := os.Stat(meta); !os.IsNotExist(err) {
		return nil
	}
	if _, err := os.Stat(meta + partialSuffix); err != nil {
		return nil
	}
	if err := os.Rename(meta+partialSuffix, meta); err != nil {
		return errors.Wrapf(err, "finish an interrupted repair: rename %s into place", meta+partialSuffix)
	}
	return atomicfile.SyncDir(p.dir)
}

// validSpare refuses a spare metadata device that is not a block device
// or is one the pool (or anything else) uses: it is opened exclusively.
func (p *Pool) validSpare(spare string) error {
	for _, used := range []string{p.cfg.DataDevice, p.cfg.MetadataDevice} {
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
		return errors.Wrapf(ErrBusy, "spare metadata device %s is in use: %v", spare, err)
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

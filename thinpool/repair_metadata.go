package thinpool

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/errdefs"
	"github.com/thinctl/thinctl/internal/atomicfile"
	"github.com/thinctl/thinctl/internal/failpoint"
	"github.com/thinctl/thinctl/thinpool/internal/metaswap"
	"github.com/thinctl/thinctl/thinpool/internal/thintools"
)

// removePartials removes the repaired metadata files a crashed Repair
// left that pool.json does not name (one it names is renamed into place).
func (p *Pool) removePartials() error {
	if err := p.finishPartialMetadata(); err != nil {
		return err
	}
	metaswap.RemovePartials(p.dir, metaFileName)
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
		size := p.cfg.MetadataSize
		if fi, err := os.Stat(old); err == nil && uint64(fi.Size()) > size {
			size = uint64(fi.Size())
		}
		if target, final, err = metaswap.NewFile(p.dir, metaFileName, size, time.Now()); err != nil {
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
		if err := metaswap.ValidSpare(spare, p.cfg.DataDevice, p.cfg.MetadataDevice); err != nil {
			return "", err
		}
		target, final = spare, spare
	}
	if err := metaswap.Rebuild(ctx, repair, check, old, target, target != final); err != nil {
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
	return metaswap.FinishPartial(p.metaFilePath(), p.dir)
}

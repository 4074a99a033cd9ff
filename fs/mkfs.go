package fs

import (
	"context"

	"github.com/pkg/errors"
)

// MkfsOptions tunes Mkfs.
type MkfsOptions struct {
	ExtraArgs []string // appended to the mkfs command line
	Label     string   // filesystem label: at most 16 bytes for ext4, 12 for xfs
}

// Label length limits of the on-disk formats.
const (
	maxExt4Label = 16
	maxXFSLabel  = 12
)

// Mkfs formats dev (a block device or a regular file) with t.
//
// ext4 is made with mkfs.ext4 -F -q and lazy inode table and journal
// initialisation off, so that no background writes follow mkfs (a thin pool
// must not fill behind the caller's back), and without discarding the device
// first. xfs is made with mkfs.xfs -f -q -K (no discard). ExtraArgs go after
// these options and before the device. A missing program is ErrToolMissing;
// a failing one returns its message. When ctx ends mkfs is killed and the
// error wraps ctx's error; the device then holds no usable filesystem.
func Mkfs(ctx context.Context, dev string, t Type, opts MkfsOptions) error {
	args, err := mkfsArgs(dev, t, opts)
	if err != nil {
		return err
	}
	if err := runTool(ctx, args[0], args[1:]...); err != nil {
		return errors.Wrapf(err, "make %s filesystem on %s", t, dev)
	}
	return nil
}

// mkfsArgs builds the command line (program first) for Mkfs.
func mkfsArgs(dev string, t Type, opts MkfsOptions) ([]string, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	if dev == "" {
		return nil, errors.New("mkfs: no device given")
	}
	var args []string
	limit := maxExt4Label
	switch t {
	case Ext4:
		args = []string{"mkfs.ext4", "-F", "-q", "-E", "nodiscard,lazy_itable_init=0,lazy_journal_init=0"}
	case XFS:
		args = []string{"mkfs.xfs", "-f", "-q", "-K"}
		limit = maxXFSLabel
	}
	if opts.Label != "" {
		if len(opts.Label) > limit {
			return nil, errors.Errorf("mkfs: label %q is %d bytes; %s allows at most %d", opts.Label, len(opts.Label), t, limit)
		}
		args = append(args, "-L", opts.Label)
	}
	args = append(args, opts.ExtraArgs...)
	return append(args, dev), nil
}

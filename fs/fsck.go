package fs

import (
	"context"
	"encoding/binary"
	"io"
	"os"
	"os/exec"
	"strings"

	"github.com/pkg/errors"
)

// ext4 superblock fields that say whether the filesystem recorded errors.
const (
	extState      = 0x3A  // __le16 s_state: 1 clean, 2 errors, 4 orphans being recovered
	extErrorCount = 0x194 // __le32 s_error_count
	extStateError = 0x0002
	extStateLen   = extErrorCount + 4
)

// FsErrors is what a filesystem's superblock says about errors the kernel
// met in it.
type FsErrors struct {
	Type Type
	// Known is false when the superblock does not record errors (xfs
	// keeps no such flag; only xfs_repair -n can tell).
	Known bool
	// HasErrors is true when the superblock's state says errors were
	// found (ext4 EXT4_ERROR_FS) or its error count is not zero.
	HasErrors bool
	// Count is ext4's s_error_count.
	Count uint32
}

// ReadFsErrors reads dev's superblock and reports the errors it records.
func ReadFsErrors(dev string) (FsErrors, error) {
	f, err := os.Open(dev)
	if err != nil {
		return FsErrors{}, errors.Wrap(err, "read filesystem state")
	}
	defer f.Close()
	buf := make([]byte, extSuperOffset+extStateLen)
	n, err := f.ReadAt(buf, 0)
	if err != nil && err != io.EOF {
		return FsErrors{}, errors.Wrapf(err, "read the superblock of %s", dev)
	}
	return ParseFsErrors(buf[:n])
}

// ParseFsErrors parses the first bytes of a device the way ReadFsErrors
// does: for ext4 the superblock's s_state and s_error_count.
func ParseFsErrors(b []byte) (FsErrors, error) {
	if len(b) >= 4 && string(b[:4]) == xfsMagic {
		return FsErrors{Type: XFS}, nil
	}
	if len(b) < extSuperOffset+extMagic+2 || binary.LittleEndian.Uint16(b[extSuperOffset+extMagic:]) != extMagicValue {
		return FsErrors{}, ErrUnknownFilesystem
	}
	sb := b[extSuperOffset:]
	if len(sb) < extStateLen {
		return FsErrors{}, errors.Wrap(ErrUnknownFilesystem, "ext4 superblock truncated")
	}
	r := FsErrors{Type: Ext4, Known: true, Count: binary.LittleEndian.Uint32(sb[extErrorCount:])}
	r.HasErrors = binary.LittleEndian.Uint16(sb[extState:])&extStateError != 0 || r.Count != 0
	return r, nil
}

// FsckResult says what a filesystem check did.
type FsckResult struct {
	// Fixed is true when the checker corrected errors.
	Fixed bool
	// Clean is true when the filesystem has no errors left.
	Clean bool
	// Summary says it in words (the checker's exit status mapped).
	Summary string
	// Output is what the checker printed.
	Output string
}

// Fsck checks and repairs the unmounted filesystem on dev: e2fsck -p
// (and -y when -p stops at a problem it will not fix alone) for ext4,
// xfs_repair for xfs. An error means the checker could not run or could
// not fix everything.
func Fsck(ctx context.Context, dev string, t Type) (FsckResult, error) {
	switch t {
	case Ext4:
		r, code, err := runFsck(ctx, "e2fsck", "-p", dev)
		if err == nil && code&4 != 0 {
			r, code, err = runFsck(ctx, "e2fsck", "-y", dev)
		}
		if err != nil {
			return r, err
		}
		return e2fsckResult(r, code)
	case XFS:
		r, code, err := runFsck(ctx, "xfs_repair", dev)
		if err != nil {
			return r, err
		}
		switch code {
		case 0:
			r.Clean, r.Summary = true, "xfs_repair finished: the filesystem is consistent (anything it fixed is in its output)"
			r.Fixed = strings.Contains(r.Output, "fixing") || strings.Contains(r.Output, "correcting") || strings.Contains(r.Output, "clearing")
			return r, nil
		case 2:
			return r, errors.Errorf("xfs_repair: the filesystem's log holds changes: mount and unmount it once to replay the log, then check again")
		}
		return r, errors.Errorf("xfs_repair exited with %d: %s", code, oneLine(r.Output))
	}
	return FsckResult{}, errors.Wrapf(ErrUnknownFilesystem, "no checker for filesystem type %q", t)
}

// e2fsckResult maps e2fsck's exit status (a bit mask).
func e2fsckResult(r FsckResult, code int) (FsckResult, error) {
	switch {
	case code == 0:
		r.Clean, r.Summary = true, "e2fsck: no errors"
	case code&^3 == 0:
		r.Clean, r.Fixed, r.Summary = true, true, "e2fsck corrected errors; the filesystem is consistent now"
	case code&4 != 0:
		return r, errors.Errorf("e2fsck left errors uncorrected (exit %d): %s", code, oneLine(r.Output))
	default:
		return r, errors.Errorf("e2fsck failed (exit %d): %s", code, oneLine(r.Output))
	}
	return r, nil
}

// runFsck runs a checker and returns its exit status (an error only when
// it could not run).
func runFsck(ctx context.Context, name string, args ...string) (FsckResult, int, error) {
	p, err := lookTool(name)
	if err != nil {
		return FsckResult{}, 0, err
	}
	cmd := exec.CommandContext(ctx, p, args...)
	out, err := cmd.CombinedOutput()
	r := FsckResult{Output: strings.TrimSpace(string(out))}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ctx.Err() == nil {
		return r, ee.ExitCode(), nil
	}
	if err != nil {
		return r, 0, errors.Wrapf(err, "run %s", name)
	}
	return r, 0, nil
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 400 {
		s = s[:400] + "..."
	}
	return s
}

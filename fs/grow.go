package fs

import (
	"bufio"
	"context"
	"os"
	"strconv"
	"strings"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"
)

// Grow grows the filesystem on dev to fill the device.
//
// ext4 is grown with resize2fs: online when dev is mounted (anywhere in this
// mount namespace), otherwise offline after a forced e2fsck -p, which
// resize2fs demands. xfs can only grow while mounted: xfs_growfs runs on
// mountpoint, or on wherever dev is mounted when mountpoint is empty; an
// unmounted xfs is ErrNotMounted. When ctx ends the running tool is killed
// (resize2fs and xfs_growfs leave a consistent filesystem of the old or an
// intermediate size) and the error wraps ctx's error.
func Grow(ctx context.Context, dev, mountpoint string, t Type) error {
	if err := t.check(); err != nil {
		return err
	}
	devnum, err := blockDevNumber(dev)
	if err != nil {
		return errors.Wrap(err, "grow filesystem")
	}
	mounted, err := mountPointOf(devnum, mountpoint)
	if err != nil {
		return errors.Wrap(err, "grow filesystem")
	}
	switch t {
	case Ext4:
		if mounted == "" {
			if err := fsckPreen(ctx, dev); err != nil {
				return errors.Wrapf(err, "grow ext4 on %s", dev)
			}
		}
		if err := runTool(ctx, "resize2fs", dev); err != nil {
			if mounted != "" && !hasCapability(unix.CAP_SYS_RESOURCE) {
				return errors.Wrapf(err, "grow ext4 on %s online: the kernel demands CAP_SYS_RESOURCE, which this process lacks", dev)
			}
			return errors.Wrapf(err, "grow ext4 on %s", dev)
		}
	case XFS:
		if mounted == "" {
			return errors.Wrapf(ErrNotMounted, "grow xfs on %s: xfs grows only while mounted; mount it first", dev)
		}
		if err := runTool(ctx, "xfs_growfs", mounted); err != nil {
			return errors.Wrapf(err, "grow xfs on %s", dev)
		}
	}
	return nil
}

// fsckPreen runs e2fsck -f -p on an unmounted ext4. Exit status 1 (errors
// corrected) is success.
func fsckPreen(ctx context.Context, dev string) error {
	err := runTool(ctx, "e2fsck", "-f", "-p", dev)
	var ee interface{ ExitCode() int }
	if errors.As(err, &ee) && ee.ExitCode() == 1 {
		return nil
	}
	return err
}

// blockDevNumber returns the device number of the block device dev.
func blockDevNumber(dev string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(dev, &st); err != nil {
		return 0, errors.Wrapf(err, "stat %s", dev)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return 0, errors.Errorf("%s is not a block device", dev)
	}
	return uint64(st.Rdev), nil
}

// mountPointOf returns where the filesystem of block device devnum is
// mounted in this mount namespace: want when it is one of its mount points,
// else the first one, else "".
func mountPointOf(devnum uint64, want string) (string, error) {
	if want != "" {
		if p, err := canonical(want); err == nil {
			want = p
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
	}
	mounts, err := readMountInfo("self")
	if err != nil {
		return "", err
	}
	first := ""
	for _, m := range mounts {
		if m.Dev() != devnum {
			continue
		}
		if m.MountPoint == want {
			return want, nil
		}
		if first == "" {
			first = m.MountPoint
		}
	}
	return first, nil
}

// hasCapability reports whether capability c is in our effective set.
func hasCapability(c int) bool {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return true // cannot tell: assume so and let the kernel decide
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err != nil || mask&(1<<uint(c)) != 0
		}
	}
	return true
}

package aufs

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/driver"
	"github.com/thinctl/thinctl/errdefs"
)

// procFilesystems is where the kernel lists the filesystem types it can mount.
const procFilesystems = "/proc/filesystems"

// Filesystem magic numbers (struct statfs f_type) the driver cares about.
const (
	magicAufs  = 0x61756673 // "aufs"
	magicBtrfs = 0x9123683E
)

// parseFilesystems returns the filesystem type names listed in
// /proc/filesystems. Each line is an optional "nodev" flag, a tab and the
// name; malformed lines are skipped, since the file is only ever consulted
// to ask whether one name is present.
func parseFilesystems(b []byte) []string {
	var names []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		switch {
		case len(fields) == 1 && fields[0] != "nodev":
			names = append(names, fields[0])
		case len(fields) == 2 && fields[0] == "nodev":
			names = append(names, fields[1])
		}
	}
	return names
}

// hasFilesystem reports whether /proc/filesystems content b lists name.
func hasFilesystem(b []byte, name string) bool {
	for _, n := range parseFilesystems(b) {
		if n == name {
			return true
		}
	}
	return false
}

// supportProbe is how the driver asks the host about aufs; tests swap it.
type supportProbe struct {
	readFilesystems func() ([]byte, error)
	// loadModule asks the kernel to load aufs; its failure is not an error
	// by itself (the module may be built in, or absent for good).
	loadModule func()
}

// hostProbe consults the running kernel.
var hostProbe = supportProbe{
	readFilesystems: func() ([]byte, error) { return os.ReadFile(procFilesystems) },
	loadModule: func() {
		if p, err := exec.LookPath("modprobe"); err == nil {
			_ = exec.Command(p, "aufs").Run()
		}
	},
}

// checkSupport returns nil when the kernel can mount aufs, trying to load
// the module first if it is not listed yet, and otherwise an error that
// wraps driver.ErrNotSupported and says why.
func checkSupport(p supportProbe) error {
	b, err := p.readFilesystems()
	if err == nil && hasFilesystem(b, "aufs") {
		return nil
	}
	p.loadModule()
	b, err = p.readFilesystems()
	if err != nil {
		return errdefs.Wrapf(driver.ErrNotSupported, err, "aufs: cannot read %s (%v)", procFilesystems, err)
	}
	if !hasFilesystem(b, "aufs") {
		return errors.Wrap(driver.ErrNotSupported, "aufs: kernel has no aufs (not in /proc/filesystems)")
	}
	return nil
}

// Supported reports whether this host's kernel can mount aufs (after trying
// to load the module); the error wraps driver.ErrNotSupported and says why
// not.
func Supported() error { return checkSupport(hostProbe) }

// checkBackingFS refuses homes on filesystems aufs cannot use as branches:
// aufs itself (branches may not be aufs) and btrfs (known to misbehave as
// an aufs branch). It returns the backing filesystem's name for Status.
func checkBackingFS(home string) (string, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(home, &st); err != nil {
		return "", errors.Wrapf(err, "aufs: statfs %s", home)
	}
	name := fsName(int64(st.Type))
	switch int64(st.Type) {
	case magicAufs, magicBtrfs:
		return name, errors.Wrapf(driver.ErrPrerequisitesMissing,
			"aufs: driver home %s is on %s, which aufs cannot use for its branches; choose a home on ext4 or xfs", home, name)
	}
	return name, nil
}

// fsName names a filesystem magic number for Status.
func fsName(magic int64) string {
	names := map[int64]string{
		magicAufs:                  "aufs",
		magicBtrfs:                 "btrfs",
		unix.EXT4_SUPER_MAGIC:      "extfs",
		unix.XFS_SUPER_MAGIC:       "xfs",
		unix.TMPFS_MAGIC:           "tmpfs",
		unix.OVERLAYFS_SUPER_MAGIC: "overlayfs",
		unix.NFS_SUPER_MAGIC:       "nfs",
		unix.F2FS_SUPER_MAGIC:      "f2fs",
	}
	if n, ok := names[magic]; ok {
		return n
	}
	return "unknown (0x" + strconv.FormatInt(magic, 16) + ")"
}

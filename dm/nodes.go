package dm

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/errdefs"
)

// Device nodes when udev does not run: Create and Resume make
// /dev/mapper/<name> as a block node with the number the kernel returned,
// Remove deletes it, Rename renames it. With udev running none of these
// functions is called (see udev.go).

const (
	nodeMode    = 0o600
	miscMajor   = 10
	procMisc    = "/proc/misc"
	miscDMEntry = "device-mapper"
)

func (c *Client) nodePath(name string) string { return filepath.Join(c.devDir, name) }

// makeNode makes sure devDir/<name> is a block node for dev, replacing a
// stale node or file of that name.
func (c *Client) makeNode(name string, dev uint64) error {
	p := c.nodePath(name)
	var st unix.Stat_t
	err := unix.Lstat(p, &st)
	if err == nil && st.Mode&unix.S_IFMT == unix.S_IFBLK && st.Rdev == dev {
		return nil
	}
	if err == nil {
		if err := unix.Unlink(p); err != nil && err != unix.ENOENT {
			return errors.Wrapf(err, "dm: replace stale node %s", p)
		}
	}
	if err := os.MkdirAll(c.devDir, 0o755); err != nil {
		return errors.Wrapf(err, "dm: create %s", c.devDir)
	}
	if err := unix.Mknod(p, unix.S_IFBLK|nodeMode, int(dev)); err != nil && err != unix.EEXIST {
		return errors.Wrapf(err, "dm: mknod %s (block %s)", p, devString(dev))
	}
	return nil
}

// unlinkNode deletes devDir/<name>; a missing node is fine.
func (c *Client) unlinkNode(name string) error {
	p := c.nodePath(name)
	if err := unix.Unlink(p); err != nil && err != unix.ENOENT {
		return errors.Wrapf(err, "dm: remove node %s", p)
	}
	return nil
}

// dropStaleNode deletes devDir/<name> when it is a block node although the
// kernel has no such device (left behind by a deferred removal).
func (c *Client) dropStaleNode(name string) {
	var st unix.Stat_t
	if unix.Lstat(c.nodePath(name), &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFBLK {
		_ = unix.Unlink(c.nodePath(name))
	}
}

// moveNode renames devDir/<old> to devDir/<new>, making the new node when
// the old one is missing or wrong.
func (c *Client) moveNode(oldName, newName string, dev uint64) error {
	err := unix.Rename(c.nodePath(oldName), c.nodePath(newName))
	if err != nil && err != unix.ENOENT {
		return errors.Wrapf(err, "dm: rename node %s to %s", c.nodePath(oldName), c.nodePath(newName))
	}
	return c.makeNode(newName, dev)
}

// ensureControl creates the control node at path (char 10:<minor>, the minor
// read from /proc/misc) when it is missing or has the wrong number.
func ensureControl(path string) error {
	var st unix.Stat_t
	err := unix.Stat(path, &st)
	isChar := err == nil && st.Mode&unix.S_IFMT == unix.S_IFCHR
	misc, rerr := os.ReadFile(procMisc)
	minor, ok := parseProcMisc(string(misc))
	switch {
	case ok && isChar && st.Rdev == unix.Mkdev(miscMajor, minor):
		return nil
	case !ok && isChar:
		return nil // opening a control node can autoload dm-mod; let open tell
	case !ok && rerr != nil:
		return errdefs.Wrapf(ErrNotSupported, rerr, "dm: %s is missing and %s is unreadable: %v", path, procMisc, rerr)
	case !ok:
		return errors.Wrapf(ErrNotSupported, "dm: the kernel has no device-mapper (no %q in %s; load the dm-mod module)", miscDMEntry, procMisc)
	}
	if err == nil {
		if err := unix.Unlink(path); err != nil {
			return errors.Wrapf(err, "dm: replace %s, which is not the device-mapper control node", path)
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return errors.Wrapf(err, "dm: create %s", filepath.Dir(path))
	}
	if err := unix.Mknod(path, unix.S_IFCHR|nodeMode, int(unix.Mkdev(miscMajor, minor))); err != nil && err != unix.EEXIST {
		if err == unix.EPERM || err == unix.EACCES {
			return errdefs.Wrapf(ErrPermission, err, "dm: mknod %s: %v (run as root)", path, err)
		}
		return errors.Wrapf(err, "dm: mknod %s", path)
	}
	return nil
}

// parseProcMisc finds the device-mapper minor in /proc/misc ("236 device-mapper").
func parseProcMisc(text string) (uint32, bool) {
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[1] == miscDMEntry {
			n, err := strconv.ParseUint(f[0], 10, 32)
			if err == nil && n < 1<<20 {
				return uint32(n), true
			}
		}
	}
	return 0, false
}

package dm

import (
	"context"
	"time"

	"github.com/thinctl/thinctl/internal/wait"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"
)

// With udev running, the device-mapper udev rules (10-dm.rules) make
// /dev/mapper/<name> on the "change" uevent of a resume and drop it on
// "remove". The kernel passes event_nr of resume, remove and rename to udev
// as DM_COOKIE: the low 16 bits are a semaphore id (0: nobody waits on it,
// which "dmsetup udevcomplete" accepts) and the high 16 bits are flags the
// rules decode with "dmsetup udevflags". On a resume or rename we send:
//
//   - DM_UDEV_PRIMARY_SOURCE_FLAG: the event comes from the program that
//     changed the device, so the rules treat it as genuine and act on it
//     (without it they fall back to the values udev's database holds, and
//     a later "add" event, such as "udevadm trigger --action=add", drops
//     the device's links);
//   - DM_UDEV_DISABLE_LIBRARY_FALLBACK: we never make nodes while udev runs;
//   - DM_UDEV_DISABLE_DISK_RULES_FLAG only when asked (ResumeOptions).
//
// and none of DM_UDEV_DISABLE_DM_RULES_FLAG / _SUBSYSTEM_RULES / _OTHER_RULES,
// which would stop the rules from making the node or systemd from seeing the
// device. We then wait, bounded, for the node to appear or vanish instead of
// using semaphores.
//
// A removal carries no cookie: the rules ignore "remove" events (their
// first test is ACTION "add|change") except to run "dmsetup udevcomplete"
// for a cookie, a process udev would start for nothing.
const (
	udevDisableDiskRules       = 0x0004
	udevDisableLibraryFallback = 0x0020
	udevPrimarySource          = 0x0040
	udevFlagsShift             = 16
)

// cookie returns the event_nr to send on resume and rename.
func cookie(udev, noDiskRules bool) uint32 {
	if !udev {
		return 0
	}
	flags := uint32(udevPrimarySource | udevDisableLibraryFallback)
	if noDiskRules {
		flags |= udevDisableDiskRules
	}
	return flags << udevFlagsShift
}

// udevRunning reports whether udev runs (its control socket exists), which
// decides who makes device nodes. It is checked per operation.
func (c *Client) udevRunning() bool {
	var st unix.Stat_t
	return unix.Stat(c.udevControl, &st) == nil
}

// UdevRunning reports whether this client leaves /dev/mapper nodes to udev
// (true) or makes them itself (false).
func (c *Client) UdevRunning() bool { return c.udevRunning() }

// waitNode polls for the node from every nodePollMin up to every
// nodePollMax: udev makes a link 10 to 200 ms after the event in the
// emulated guest, and a coarser poll added up to its interval to every
// Activate (a stat every few milliseconds costs next to nothing).
const (
	nodePollMin = 250 * time.Microsecond
	nodePollMax = 4 * time.Millisecond
)

// waitNode waits until devDir/<name> resolves to block device dev (present)
// or no longer exists (!present), polling with a growing interval up to
// the udev timeout or until ctx ends.
func (c *Client) waitNode(ctx context.Context, name string, dev uint64, present bool) error {
	p := c.nodePath(name)
	timeout := time.Duration(c.udevTimeout.Load())
	deadline := time.Now().Add(timeout)
	sleep := nodePollMin
	for {
		var st unix.Stat_t
		if present {
			err := unix.Stat(p, &st)
			if err == nil && st.Mode&unix.S_IFMT == unix.S_IFBLK && (dev == 0 || st.Rdev == dev) {
				return nil
			}
		} else if err := unix.Lstat(p, &st); err == unix.ENOENT {
			return nil
		}
		if time.Now().After(deadline) {
			if present {
				return errors.Errorf("dm: udev did not create %s for device %s within %s (are the device-mapper udev rules, e.g. 10-dm.rules from dmsetup, installed?)", p, devString(dev), timeout)
			}
			return errors.Errorf("dm: device removed, but udev did not remove %s within %s", p, timeout)
		}
		if err := wait.Sleep(ctx, sleep); err != nil {
			if present {
				return errors.Wrapf(err, "dm: waiting for udev to create %s for device %s", p, devString(dev))
			}
			return errors.Wrapf(err, "dm: device removed; waiting for udev to remove %s", p)
		}
		if sleep < nodePollMax {
			sleep *= 2
		}
	}
}

package dm

import (
	"context"
	"fmt"

	"github.com/thinctl/thinctl/internal/wait"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"
)

// defaultRemoveRetries is how often Remove retries EBUSY by default: with a
// first sleep of 60 ms doubling each time, five tries span about a second.
const defaultRemoveRetries = 4

// Create makes a new mapped device with no table. Without udev it also makes
// /dev/mapper/<name> (a block node, mode 0600). With udev running the node
// is udev's to make, and the device-mapper rules make it only when a table
// goes live: the Resume that follows LoadTable waits for it.
func (c *Client) Create(name string, opts CreateOptions) (Info, error) {
	if err := ValidateName(name); err != nil {
		return Info{}, err
	}
	if err := ValidateUUID(opts.UUID); err != nil {
		return Info{}, err
	}
	rep, err := c.run("create", unix.DM_DEV_CREATE, request{dev: byName(name), newUUID: opts.UUID, naming: true})
	if err != nil {
		return Info{}, err
	}
	info := rep.hdr.info()
	if !c.udevRunning() {
		if err := c.makeNode(name, info.Dev); err != nil {
			// Leave nothing half made: the caller sees one failure.
			_, _ = c.run("remove", unix.DM_DEV_REMOVE, request{dev: byName(name)})
			return Info{}, err
		}
	}
	return info, nil
}

// Resume makes the inactive table live (or resumes a suspended device). When
// it returns, /dev/mapper/<name> exists: made (or repaired) here without
// udev, or made by udev, which Resume waits for (bounded, and until ctx
// ends: the device is resumed either way, only the wait is cut short).
func (c *Client) Resume(ctx context.Context, name string) error {
	return c.ResumeWith(ctx, name, ResumeOptions{})
}

// ResumeWith is Resume with options.
func (c *Client) ResumeWith(ctx context.Context, name string, opts ResumeOptions) error {
	udev := c.udevRunning()
	rep, err := c.run("resume", unix.DM_DEV_SUSPEND, request{dev: byName(name), eventNr: cookie(udev, opts.NoDiskRules)})
	if err != nil {
		return err
	}
	if !udev {
		return c.makeNode(name, rep.hdr.Dev)
	}
	if rep.hdr.Flags&unix.DM_UEVENT_GENERATED_FLAG != 0 && rep.hdr.Flags&unix.DM_ACTIVE_PRESENT_FLAG != 0 {
		return c.waitNode(ctx, name, rep.hdr.Dev, true)
	}
	return nil
}

// Suspend suspends the device: I/O queues until Resume.
func (c *Client) Suspend(name string, opts SuspendOptions) error {
	flags := uint32(unix.DM_SUSPEND_FLAG)
	if opts.NoFlush {
		flags |= unix.DM_NOFLUSH_FLAG
	}
	if opts.SkipLockfs {
		flags |= unix.DM_SKIP_LOCKFS_FLAG
	}
	_, err := c.run("suspend", unix.DM_DEV_SUSPEND, request{dev: byName(name), flags: flags})
	return err
}

// Remove removes the device and its node. A busy device (EBUSY: open, or
// mounted) is retried with backoff (opts.Retries) before ErrBusy.
//
// With opts.Deferred a busy device is instead marked for removal on its last
// close and Remove succeeds at once; its node then stays until the kernel
// removes the device. Without udev nothing deletes that node afterwards:
// the next Create or Remove of the name replaces or deletes the stale node.
//
// ctx ends the EBUSY retries and the wait for udev early; a device the
// kernel already removed stays removed. opts.NoNodeWait skips that wait.
func (c *Client) Remove(ctx context.Context, name string, opts RemoveOptions) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	var flags uint32
	if opts.Deferred {
		if !c.version.atLeast(minorDeferredRemove) {
			return errors.Wrapf(ErrNotSupported, "dm: remove %s: deferred removal needs ioctl version 4.%d, kernel has %s", name, minorDeferredRemove, c.version)
		}
		flags |= unix.DM_DEFERRED_REMOVE
	}
	retries := opts.Retries
	if retries == 0 {
		retries = defaultRemoveRetries
	}
	udev := c.udevRunning()
	sleep := c.removeBackoff
	var rep *reply
	for attempt := 0; ; attempt++ {
		var err error
		rep, err = c.run("remove", unix.DM_DEV_REMOVE, request{dev: byName(name), flags: flags})
		if err == nil {
			break
		}
		if errors.Is(err, ErrBusy) {
			if attempt < retries {
				if cerr := wait.Sleep(ctx, sleep); cerr != nil {
					return fmt.Errorf("%w; retries cut short: %w", err, cerr)
				}
				sleep *= 2
				continue
			}
			if attempt > 0 {
				return errors.Wrapf(err, "still busy after %d tries (close or unmount it, or remove it deferred)", attempt+1)
			}
		}
		if errors.Is(err, ErrNotFound) && !udev {
			c.dropStaleNode(name)
		}
		return err
	}
	if rep.hdr.Flags&unix.DM_DEFERRED_REMOVE != 0 {
		return nil // still open: the kernel removes it on last close
	}
	if !udev {
		return c.unlinkNode(name)
	}
	if !opts.NoNodeWait && rep.hdr.Flags&unix.DM_UEVENT_GENERATED_FLAG != 0 {
		return c.waitNode(ctx, name, 0, false)
	}
	return nil
}

// CancelDeferredRemove cancels a pending deferred removal.
func (c *Client) CancelDeferredRemove(name string) error {
	if !c.version.atLeast(minorDeferredRemove) {
		return errors.Wrapf(ErrNotSupported, "dm: cancel deferred remove %s: needs ioctl version 4.%d, kernel has %s", name, minorDeferredRemove, c.version)
	}
	_, err := c.Message(name, 0, "@cancel_deferred_remove")
	return err
}

// Rename renames the device and moves its node: renamed here without udev,
// or waited for (bounded) until udev has made the new name and dropped the
// old one. ctx ends that wait early (the rename itself is done).
func (c *Client) Rename(ctx context.Context, name, newName string) error {
	if err := ValidateName(newName); err != nil {
		return err
	}
	udev := c.udevRunning()
	rep, err := c.run("rename", unix.DM_DEV_RENAME, request{dev: byName(name), eventNr: cookie(udev, false), payload: encodeString(newName), naming: true})
	if err != nil {
		return err
	}
	dev := rep.hdr.Dev
	if dev == 0 {
		info, err := c.Info(newName)
		if err != nil {
			return err
		}
		dev = info.Dev
	}
	if !udev {
		return c.moveNode(name, newName, dev)
	}
	if rep.hdr.Flags&unix.DM_UEVENT_GENERATED_FLAG == 0 {
		return nil
	}
	if err := c.waitNode(ctx, newName, dev, true); err != nil {
		return err
	}
	return c.waitNode(ctx, name, 0, false)
}

// Info returns the device's state; ErrNotFound when it does not exist.
func (c *Client) Info(name string) (Info, error) { return c.info(byName(name)) }

// InfoByUUID returns the state of the device with this uuid.
func (c *Client) InfoByUUID(uuid string) (Info, error) {
	if uuid == "" {
		return Info{}, errors.Wrap(ErrInvalidName, "dm: empty uuid")
	}
	return c.info(ref{uuid: uuid})
}

// InfoByDev returns the state of the device with this number (unix.Mkdev).
func (c *Client) InfoByDev(dev uint64) (Info, error) {
	if dev == 0 {
		return Info{}, errors.Wrap(ErrInvalidArgument, "dm: device number 0")
	}
	return c.info(ref{dev: dev})
}

func (c *Client) info(r ref) (Info, error) {
	rep, err := c.run("info", unix.DM_DEV_STATUS, request{dev: r})
	if err != nil {
		return Info{}, err
	}
	return rep.hdr.info(), nil
}

// ClearTable drops the device's inactive table.
func (c *Client) ClearTable(name string) error {
	_, err := c.run("clear table", unix.DM_TABLE_CLEAR, request{dev: byName(name)})
	return err
}

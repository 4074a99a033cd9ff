package dm

import (
	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/errdefs"
)

// LoadTable loads targets into the device's inactive table; Resume makes it
// live. A table the kernel refuses fails with ErrInvalidTable, and the
// error's Kernel field (and text) carries the kernel log's reason when it
// could be read.
func (c *Client) LoadTable(name string, targets []Target, opts LoadOptions) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	if len(targets) == 0 {
		return errors.Wrapf(ErrInvalidArgument, "dm: load table %s: a table needs at least one target", name)
	}
	payload, err := encodeTargets(targets)
	if err != nil {
		return errdefs.Wrapf(ErrInvalidArgument, err, "dm: load table %s: %v", name, err)
	}
	var flags uint32
	if opts.ReadOnly {
		flags |= unix.DM_READONLY_FLAG
	}
	k := c.markKmsg()
	_, err = c.run("load table", unix.DM_TABLE_LOAD, request{
		dev:         byName(name),
		flags:       flags,
		targetCount: uint32(len(targets)),
		payload:     payload,
		table:       true,
	})
	if err == nil {
		k.close()
		return nil
	}
	return withKernelReason(err, k, c.devOf(name))
}

// devOf returns the device's number, 0 when unknown (used to pick the
// kernel log lines about it).
func (c *Client) devOf(name string) uint64 {
	info, err := c.Info(name)
	if err != nil {
		return 0
	}
	return info.Dev
}

// Table returns the live (or inactive) table.
func (c *Client) Table(name string, opts TableOptions) ([]Target, error) {
	flags := uint32(unix.DM_STATUS_TABLE_FLAG)
	if opts.Inactive {
		flags |= unix.DM_QUERY_INACTIVE_TABLE_FLAG
	}
	return c.targets("table", name, flags)
}

// Status returns each target's status line in Target.Params.
func (c *Client) Status(name string, opts StatusOptions) ([]Target, error) {
	var flags uint32
	if opts.NoFlush {
		flags |= unix.DM_NOFLUSH_FLAG
	}
	return c.targets("status", name, flags)
}

func (c *Client) targets(op, name string, flags uint32) ([]Target, error) {
	rep, err := c.run(op, unix.DM_TABLE_STATUS, request{dev: byName(name), flags: flags, out: true})
	if err != nil {
		return nil, err
	}
	data, err := rep.data()
	if err != nil {
		return nil, errors.Wrapf(err, "dm: %s %s", op, name)
	}
	t, err := decodeTargets(data, rep.hdr.TargetCount)
	return t, errors.Wrapf(err, "dm: %s %s", op, name)
}

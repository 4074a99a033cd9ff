package dm

import (
	"github.com/pkg/errors"
	"golang.org/x/sys/unix"
)

// ListDevices lists every mapped device, with its uuid when the kernel
// reports uuids in lists (ioctl 4.45 and later; empty otherwise).
func (c *Client) ListDevices() ([]Device, error) {
	extras := c.version.atLeast(minorArmPoll)
	var flags uint32
	if extras {
		flags = unix.DM_UUID_FLAG // older kernels ignore it; the record flags say what came back
	}
	rep, err := c.run("list devices", unix.DM_LIST_DEVICES, request{global: true, flags: flags, out: true})
	if err != nil {
		return nil, err
	}
	end := int(rep.hdr.DataSize)
	if end > len(rep.buf) {
		end = len(rep.buf)
	}
	devs, err := decodeNameList(rep.buf, int(rep.hdr.DataStart), end, extras)
	return devs, errors.Wrap(err, "dm: list devices")
}

// ListTargetVersions lists the target types the kernel has loaded.
func (c *Client) ListTargetVersions() ([]TargetVersion, error) {
	rep, err := c.run("list versions", unix.DM_LIST_VERSIONS, request{global: true, out: true})
	if err != nil {
		return nil, err
	}
	data, err := rep.data()
	if err != nil {
		return nil, errors.Wrap(err, "dm: list versions")
	}
	v, err := decodeVersions(data)
	return v, errors.Wrap(err, "dm: list versions")
}

// Deps returns the device numbers (unix.Mkdev) the device's live table
// depends on.
func (c *Client) Deps(name string) ([]uint64, error) {
	rep, err := c.run("deps", unix.DM_TABLE_DEPS, request{dev: byName(name), out: true})
	if err != nil {
		return nil, err
	}
	data, err := rep.data()
	if err != nil {
		return nil, errors.Wrapf(err, "dm: deps %s", name)
	}
	d, err := decodeDeps(data)
	return d, errors.Wrapf(err, "dm: deps %s", name)
}

package dm

import (
	"strings"

	"github.com/pkg/errors"
)

// Limits the kernel enforces by silent truncation; we reject instead.
const (
	MaxNameLen = nameLen - 1 // 127 bytes
	MaxUUIDLen = uuidLen - 1 // 128 bytes
)

// mapperDir is where device nodes live, DM_DIR under /dev.
const mapperDir = "/dev/mapper"

// NodePath returns /dev/mapper/<name>.
func NodePath(name string) string { return mapperDir + "/" + name }

// ValidateName reports whether name is usable as a device-mapper name
// (1..127 bytes, no '/', not "control", "." or ".."). The error wraps
// ErrInvalidName.
func ValidateName(name string) error {
	switch {
	case name == "":
		return errors.Wrap(ErrInvalidName, "dm: empty device name")
	case len(name) > MaxNameLen:
		return errors.Wrapf(ErrInvalidName, "dm: device name %.20q... is %d bytes; the kernel allows at most %d", name, len(name), MaxNameLen)
	case strings.IndexByte(name, '/') >= 0:
		return errors.Wrapf(ErrInvalidName, "dm: device name %q contains '/'", name)
	case strings.IndexByte(name, 0) >= 0:
		return errors.Wrapf(ErrInvalidName, "dm: device name %q contains a NUL byte", name)
	case name == "control", name == ".", name == "..":
		return errors.Wrapf(ErrInvalidName, "dm: %q is reserved and cannot name a device", name)
	}
	return nil
}

// ValidateUUID reports whether uuid is usable as a device-mapper uuid (<=128
// bytes, no NUL). The empty string is valid and means "no uuid". The error
// wraps ErrInvalidName.
func ValidateUUID(uuid string) error {
	switch {
	case len(uuid) > MaxUUIDLen:
		return errors.Wrapf(ErrInvalidName, "dm: uuid %.20q... is %d bytes; the kernel allows at most %d", uuid, len(uuid), MaxUUIDLen)
	case strings.IndexByte(uuid, 0) >= 0:
		return errors.Wrapf(ErrInvalidName, "dm: uuid %q contains a NUL byte", uuid)
	}
	return nil
}

// ref names the device an ioctl acts on. The kernel looks a device up by
// exactly one of name, uuid or device number.
type ref struct {
	name string
	uuid string
	dev  uint64
}

func byName(name string) ref { return ref{name: name} }

// validate checks that exactly one key is set and that it fits.
func (r ref) validate() error {
	n := 0
	if r.name != "" {
		n++
	}
	if r.uuid != "" {
		n++
	}
	if r.dev != 0 {
		n++
	}
	if n != 1 {
		return errors.Wrap(ErrInvalidName, "dm: a device is looked up by exactly one of name, uuid or device number")
	}
	if r.name != "" {
		return ValidateName(r.name)
	}
	return ValidateUUID(r.uuid)
}

// String returns the key for error messages.
func (r ref) String() string {
	switch {
	case r.name != "":
		return r.name
	case r.uuid != "":
		return "uuid " + r.uuid
	case r.dev != 0:
		return "dev " + devString(r.dev)
	}
	return ""
}

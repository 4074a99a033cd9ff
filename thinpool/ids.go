package thinpool

import "github.com/pkg/errors"

// maxIDLength is the longest device id ValidateID accepts.
const maxIDLength = 128

// ValidateID checks a device id: 1..128 of [A-Za-z0-9_.-], not starting
// with '.' or '-'. Ids become file names in the registry and mount point
// names, so the rules keep them safe as both.
func ValidateID(id string) error {
	if id == "" {
		return errors.Wrap(ErrInvalidID, "device id is empty; use 1 to 128 characters of [A-Za-z0-9_.-]")
	}
	if len(id) > maxIDLength {
		return errors.Wrapf(ErrInvalidID, "device id is %d characters long; the limit is %d", len(id), maxIDLength)
	}
	if id[0] == '.' || id[0] == '-' {
		return errors.Wrapf(ErrInvalidID, "device id %q starts with %q; start it with a letter, digit or '_'", id, id[0])
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '.', c == '-':
		default:
			return errors.Wrapf(ErrInvalidID, "device id %q contains %q at byte %d; only [A-Za-z0-9_.-] are allowed", id, c, i)
		}
	}
	return nil
}

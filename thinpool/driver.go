package thinpool

import (
	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/units"
)

// ParseSize parses a size in the units package's grammar (units.ParseSize);
// a refused size matches ErrInvalidSize.
//
// Deprecated: use units.ParseSize. This remains only until the engine's own
// tests stop calling it; the driver adapter moved to driver/devicemapper.
func ParseSize(s string) (uint64, error) {
	n, err := units.ParseSize(s)
	if err != nil {
		return 0, errors.Wrap(ErrInvalidSize, err.Error())
	}
	return n, nil
}

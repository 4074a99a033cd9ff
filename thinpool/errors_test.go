package thinpool

import (
	"errors"
	"testing"

	pkgerrors "github.com/pkg/errors"

	"github.com/thinctl/thinctl/dm"
	"github.com/thinctl/thinctl/errdefs"
)

func TestEverySentinelMatchesItsClassThroughWrapping(t *testing.T) {
	for _, c := range []struct {
		name       string
		err, class error
	}{
		{"a missing device is not found", ErrDeviceNotFound, errdefs.ErrNotFound},
		{"a missing parent is not found", ErrParentNotFound, errdefs.ErrNotFound},
		{"a taken id exists", ErrDeviceExists, errdefs.ErrExists},
		{"a device with snapshots has children", ErrHasChildren, errdefs.ErrHasChildren},
		{"a held device is busy", ErrBusy, errdefs.ErrBusy},
		{"a deferred removal is deferred", ErrDeferred, errdefs.ErrDeferred},
		{"low space is no space", ErrLowSpace, errdefs.ErrNoSpace},
		{"an unreadable registry is corrupt", ErrRegistryCorrupt, errdefs.ErrCorrupt},
		{"an empty root is not initialized", ErrNotInitialized, errdefs.ErrNotInitialized},
		{"a used root is already initialized", ErrAlreadyInit, errdefs.ErrAlreadyInitialized},
		{"a bad size is an invalid argument", ErrInvalidSize, errdefs.ErrInvalidArgument},
		{"a bad label is an invalid argument", ErrInvalidLabel, errdefs.ErrInvalidArgument},
		{"a kernel EBUSY from dm is busy", dm.ErrBusy, errdefs.ErrBusy},
		{"a missing dm device is not found", dm.ErrNotFound, errdefs.ErrNotFound},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := pkgerrors.Wrapf(c.err, "device %q", "web")
			if !errors.Is(err, c.err) || !errors.Is(err, c.class) {
				t.Fatalf("%v: matches its sentinel %v, its class %v", err, errors.Is(err, c.err), errors.Is(err, c.class))
			}
		})
	}
}

package thinpool

import (
	"context"
	"maps"
	"unicode/utf8"

	"github.com/pkg/errors"
	"github.com/thinctl/thinctl/thinpool/internal/store"
)

// Labels: string pairs a caller keeps in a device's record, so that what
// it knows about a device (a containerd snapshot's name, kind and labels,
// for example) changes in the same atomic record write as the device
// itself. Create stores CreateOptions.Labels with the new record; SetLabels
// replaces them; Device and Devices return them.

// Label limits: a record stays small enough to read back quickly when a
// root holds tens of thousands of devices.
const (
	// A key may take what containerd allows a key and value together
	// (4096 bytes, its labels.Validate) plus a caller's 64-byte prefix:
	// the snapshotter keeps containerd's labels under "label:".
	maxLabelKey    = 4096 + 64
	maxLabelValue  = 4096
	maxLabelsTotal = 64 * 1024
)

// ValidateLabels checks labels as Create, SetLabels and Adopt do, so that
// a caller can tell before it changes anything whether they will be
// accepted; a refusal is ErrInvalidLabel.
func ValidateLabels(labels map[string]string) error { return validateLabels(labels) }

// validateLabels checks keys and values: a non-empty key, valid UTF-8
// (JSON would replace anything else), and the size limits.
func validateLabels(labels map[string]string) error {
	total := 0
	for k, v := range labels {
		switch {
		case k == "":
			return errors.Wrap(ErrInvalidLabel, "a label has an empty key")
		case len(k) > maxLabelKey:
			return errors.Wrapf(ErrInvalidLabel, "label key %.40q... is %d bytes; the limit is %d", k, len(k), maxLabelKey)
		case len(v) > maxLabelValue:
			return errors.Wrapf(ErrInvalidLabel, "label %q has a %d-byte value; the limit is %d", k, len(v), maxLabelValue)
		case !utf8.ValidString(k) || !utf8.ValidString(v):
			return errors.Wrapf(ErrInvalidLabel, "label %q is not valid UTF-8", k)
		}
		total += len(k) + len(v)
	}
	if total > maxLabelsTotal {
		return errors.Wrapf(ErrInvalidLabel, "labels take %d bytes; the limit is %d per device", total, maxLabelsTotal)
	}
	return nil
}

// copyLabels returns a copy of labels; nil for none.
func copyLabels(labels map[string]string) map[string]string {
	if len(labels) == 0 {
		return nil
	}
	return maps.Clone(labels)
}

// SetLabels replaces the labels of device id with labels (nil or empty
// removes them all) in one atomic write of its record. A device pending
// deletion is ErrDeviceNotFound.
func (p *Pool) SetLabels(ctx context.Context, id string, labels map[string]string) error {
	if err := ctx.Err(); err != nil {
		return errors.Wrapf(err, "set the labels of %q", id)
	}
	if err := validateLabels(labels); err != nil {
		return errors.Wrapf(err, "set the labels of %q", id)
	}
	return p.withLiveDevice(id, func(d store.Device) error {
		d.Labels = copyLabels(labels)
		return errors.Wrapf(p.store.Put(d), "set the labels of %q", id)
	})
}

// DeviceLabels returns every live device's labels by id (devices pending
// deletion are left out), reading only the registry: no device-mapper
// call, so it is cheap enough to run at every start of a long-lived
// caller that keeps its own index.
func (p *Pool) DeviceLabels() (map[string]map[string]string, error) {
	if err := p.lk.Lock(); err != nil {
		return nil, err
	}
	defer p.lk.Unlock()
	recs, err := p.store.List()
	if err != nil {
		return nil, err
	}
	out := make(map[string]map[string]string, len(recs))
	for _, d := range recs {
		if !d.Deleted {
			out[d.ID] = copyLabels(d.Labels)
		}
	}
	return out, nil
}

package driver

import (
	"github.com/pkg/errors"
)

// LayerInfo describes one layer for listings.
type LayerInfo struct {
	ID     string
	Parent string
	// SizeBytes is the layer's size limit or device size; 0 when unlimited.
	SizeBytes int64
	// DeviceID is the layer's thin device id (devicemapper); 0 elsewhere.
	DeviceID uint32
	// Active reports whether the layer's block device is active
	// (devicemapper); file-level backends report Mounted here.
	Active bool
	// DevicePath is the layer's block device while it is active
	// (devicemapper); "" elsewhere.
	DevicePath string
	Mounted    bool
	// MountPath is where the layer is mounted: Mounter.Mount's path.
	MountPath string
	// Deleted reports a deletion that was deferred and is still pending.
	Deleted bool
	// Extra holds further backend facts (overlay2 and aufs: "diff", the
	// layer's own directory).
	Extra map[string]string
}

// Lister is implemented by every thinctl backend: it enumerates layers,
// sorted by ID, including ones whose deletion is pending.
type Lister interface {
	List() ([]LayerInfo, error)
}

// Layer returns the entry of List for id, or an error matching ErrNotFound.
func Layer(l Lister, id string) (LayerInfo, error) {
	layers, err := l.List()
	if err != nil {
		return LayerInfo{}, err
	}
	for _, li := range layers {
		if li.ID == id {
			return li, nil
		}
	}
	return LayerInfo{}, errors.Wrapf(ErrNotFound, "layer %q", id)
}

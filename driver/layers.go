package driver

// LayerInfo describes one layer for listings (thinctl list / info).
type LayerInfo struct {
	ID        string
	Parent    string
	SizeBytes int64 // the layer's size limit or device size; 0 when unlimited
	Mounted   bool
	MountPath string
	Deleted   bool // pending deferred deletion
	// Extra holds backend facts (e.g. "device_id", "active" for devicemapper).
	Extra map[string]string
}

// Lister is implemented by every thinctl backend: it enumerates layers,
// sorted by ID.
type Lister interface {
	List() ([]LayerInfo, error)
}

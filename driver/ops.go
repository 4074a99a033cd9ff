package driver

import "context"

// The optional interfaces below cover what not every backend has. Test for
// one with a type assertion:
//
//	if g, ok := d.(driver.Grower); ok { err = g.Grow(ctx, driver.GrowOptions{DataSize: 200 << 30}) }
//
// devicemapper implements all of them; overlay2 and aufs every one but
// Grower and Activator.
//
// A driver that holds handles (devicemapper: the pool's lock and files)
// also implements io.Closer: Close releases them and leaves every mount
// and device as it is, for a program whose mounts must outlive it (a
// command-line tool). Cleanup, in contrast, also releases the mounts the
// driver took.

// PoolStatus is the state of a backend's storage as a whole.
type PoolStatus struct {
	// Driver is the backend's name.
	Driver string
	// State is "rw", "ro", "out_of_data_space" or "fail".
	State string
	// PoolName is the device-mapper name of the thin pool; "" elsewhere.
	PoolName string
	// TransactionID is the thin pool's transaction id; 0 elsewhere.
	TransactionID uint64
	// DataUsed and DataTotal are bytes of the pool's data space, or of the
	// filesystem holding a file-level backend's home.
	DataUsed, DataTotal uint64
	// MetadataUsed and MetadataTotal are bytes of the pool's metadata
	// space; 0 for file-level backends.
	MetadataUsed, MetadataTotal uint64
	// Devices counts the layers, leaving out ones being deleted (and the
	// thin pool's base device).
	Devices int
	// NeedsCheck reports that the kernel flagged the pool's metadata for a
	// check.
	NeedsCheck bool
	// ReturnedLayers counts the removed layers whose space this driver
	// value gave back to the pool's data since it was opened
	// (devicemapper); 0 elsewhere.
	ReturnedLayers int
	// Details are further facts in display order (block size, files,
	// backend facts).
	Details []KV
}

// PoolStatuser reports the state of the backend's storage.
type PoolStatuser interface {
	PoolStatus() (PoolStatus, error)
}

// GrowOptions says how far to grow a pool; a zero field leaves that part
// as it is.
type GrowOptions struct {
	DataSize, MetadataSize uint64
}

// Grower grows the backend's storage online.
type Grower interface {
	Grow(ctx context.Context, opts GrowOptions) error
}

// Upper brings the backend's storage up after a reboot (loop devices, the
// pool table) and finishes interrupted work. Opening a backend already does
// this; Up is for callers that want to say so.
type Upper interface {
	Up(ctx context.Context) error
}

// Downer takes the backend's storage down (deactivates devices, detaches
// loop devices). It fails with an error matching ErrBusy naming the layers
// still mounted.
type Downer interface {
	Down(ctx context.Context) error
}

// Destroyer removes the backend's storage and every trace of it under the
// root. Without force it refuses with ErrHasChildren while layers exist;
// with force it unmounts and removes them first. The driver is unusable
// afterwards.
type Destroyer interface {
	Destroy(ctx context.Context, force bool) error
}

// CheckOptions tunes Check.
type CheckOptions struct {
	// Repair fixes what can be fixed without losing data.
	Repair bool
}

// Problem is one inconsistency Check found.
type Problem struct {
	// Kind names the inconsistency in snake_case ("missing_parent",
	// "deleted_pending", "orphan_thin_device", ...).
	Kind string
	// ID is the layer it concerns, "" when none.
	ID string
	// Detail says what is wrong in words.
	Detail string
	// Fixed reports that Repair fixed it.
	Fixed bool
	// Fix names what brings the backend back from a health problem
	// ("repair", "grow_data", "grow_metadata", "free_host_space",
	// "fsck"); "" when Repair or a person fixes it.
	Fix string
}

// CheckReport is Check's result.
type CheckReport struct {
	// Consistent is true when no problem was found.
	Consistent bool
	Problems   []Problem
	// Notes say what could not be compared (a tool missing, a metadata
	// snapshot held).
	Notes []string
}

// Checker compares what the backend recorded with what exists.
type Checker interface {
	Check(ctx context.Context, opts CheckOptions) (CheckReport, error)
}

// Collector finishes deferred deletions whose layers are free now and
// returns their ids, sorted.
type Collector interface {
	GC(ctx context.Context) ([]string, error)
}

// Activator makes a layer's block device available without mounting it
// (devicemapper).
type Activator interface {
	// Activate returns the device's path (/dev/mapper/...).
	Activate(ctx context.Context, id string) (string, error)
	// Deactivate refuses with ErrBusy while the device is mounted or open.
	Deactivate(ctx context.Context, id string) error
}

// Resizer grows a layer's device (devicemapper).
type Resizer interface {
	// Resize grows device id to size bytes (a whole number of 512-byte
	// sectors, no smaller than now: ErrInvalidArgument otherwise) with
	// its filesystem: online when it is mounted, else when it is next
	// activated or mounted.
	Resize(ctx context.Context, id string, size uint64) error
}

// MountOptions tunes Mounter.Mount.
type MountOptions struct {
	// Options are extra mount options for this mount; a backend that takes
	// none refuses them with ErrNotSupported.
	Options []string
	// MountLabel is the SELinux label, "" for none.
	MountLabel string
}

// Mounter mounts a layer's whole filesystem, which a human or a script
// then uses, as opposed to Get's layer tree for a container runtime (for
// devicemapper Get returns the rootfs directory inside the filesystem).
// Mount and Unmount share Get's reference count: Unmount releases one
// reference this process holds, and the last one (or a call holding none,
// e.g. from another process than the one that mounted) unmounts the layer
// whoever mounted it. Unmounting a layer that is not mounted succeeds.
type Mounter interface {
	Mount(ctx context.Context, id string, opts MountOptions) (string, error)
	Unmount(ctx context.Context, id string) error
}

package driver

// This file is the contract other packages code against. Adding is fine;
// changing an existing signature means updating every caller in the repository.

import (
	"io"

	"github.com/pkg/errors"
)

// Sentinel errors; test with errors.Is.
var (
	ErrNotSupported         = errors.New("driver not supported on this host")
	ErrPrerequisitesMissing = errors.New("driver prerequisites missing")
	ErrNotFound             = errors.New("layer not found")
	ErrExists               = errors.New("layer already exists")
	ErrHasChildren          = errors.New("layer has children")
)

// CreateOpts carries per-layer options.
type CreateOpts struct {
	MountLabel string
	// StorageOpt holds backend options; "size" (bytes or units like 10G) is
	// understood by devicemapper and overlay2-on-xfs.
	StorageOpt map[string]string
}

// KV is one ordered Status entry.
type KV struct{ Key, Value string }

// Driver is a layered storage backend, modelled on Docker's graph driver.
type Driver interface {
	// String names the backend ("devicemapper", "overlay2", "aufs").
	String() string
	// Create makes a read-only layer id on top of parent ("" for none).
	Create(id, parent string, opts *CreateOpts) error
	// CreateReadWrite makes a writable layer id on top of parent.
	CreateReadWrite(id, parent string, opts *CreateOpts) error
	// Remove deletes layer id; ErrHasChildren when other layers build on it.
	Remove(id string) error
	// Get mounts layer id (reference counted) and returns its path.
	Get(id, mountLabel string) (string, error)
	// Put releases one reference taken by Get.
	Put(id string) error
	// Exists reports whether layer id exists.
	Exists(id string) bool
	// Status describes the backend as ordered key/value pairs.
	Status() []KV
	// Metadata returns backend facts about layer id.
	Metadata(id string) (map[string]string, error)
	// Cleanup releases everything the driver holds (unmounts, deactivates).
	Cleanup() error
}

// DiffDriver is implemented by every backend through NaiveDiff or natively.
type DiffDriver interface {
	// Diff returns a tar stream of id's changes against parent, whiteouts in OCI .wh. form.
	Diff(id, parent string) (io.ReadCloser, error)
	// Changes lists paths modified, added or deleted in id relative to parent.
	Changes(id, parent string) ([]Change, error)
	// ApplyDiff unpacks a tar stream into id and returns the bytes applied.
	ApplyDiff(id, parent string, diff io.Reader) (int64, error)
	// DiffSize returns the size in bytes of id's changes against parent.
	DiffSize(id, parent string) (int64, error)
}

// ChangeKind says how a path changed.
type ChangeKind int

// The kinds of change.
const (
	ChangeModify ChangeKind = iota
	ChangeAdd
	ChangeDelete
)

// Change is one entry of Changes.
type Change struct {
	Path string
	Kind ChangeKind
}

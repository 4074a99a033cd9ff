package driver

// This file is the contract other packages code against. Adding is fine;
// changing an existing signature means updating every caller in the repository.

import (
	"context"
	"io"
)

// CreateOpts carries per-layer options.
type CreateOpts struct {
	// MountLabel is the SELinux label for the layer's mounts, "" for none.
	MountLabel string
	// StorageOpt holds per-layer backend options. "size" (in the units
	// package's grammar, e.g. "10G") limits the layer where the backend can:
	// devicemapper (the device's size) and overlay2 on xfs (a project quota).
	StorageOpt map[string]string
}

// KV is one ordered Status entry.
type KV struct{ Key, Value string }

// Driver is a layered storage backend, modelled on Docker's graph driver.
// Every method that can block takes a context first; a cancelled or
// expired context makes it return the context's error (wrapped) as soon as
// the backend can stop without leaving half-done work.
type Driver interface {
	// String names the backend ("devicemapper", "overlay2", "aufs").
	String() string
	// Create makes a read-only layer id on top of parent ("" for none).
	Create(ctx context.Context, id, parent string, opts *CreateOpts) error
	// CreateReadWrite makes a writable layer id on top of parent.
	CreateReadWrite(ctx context.Context, id, parent string, opts *CreateOpts) error
	// Remove deletes layer id, unmounting it first. It fails with
	// ErrHasChildren when other layers build on it and ErrNotFound when it
	// does not exist. A backend that cannot delete a layer something still
	// holds (devicemapper) records the deletion, hides the layer (Exists is
	// false) and returns an error matching ErrDeferred that says who holds
	// it; the deletion finishes when a later call (or GC) finds it free.
	Remove(ctx context.Context, id string) error
	// Get mounts layer id (reference counted) and returns the path of its
	// tree.
	Get(ctx context.Context, id, mountLabel string) (string, error)
	// Put releases one reference taken by Get.
	Put(ctx context.Context, id string) error
	// Exists reports whether layer id exists.
	Exists(id string) bool
	// Status describes the backend as ordered key/value pairs.
	Status() []KV
	// Metadata returns backend facts about layer id.
	Metadata(id string) (map[string]string, error)
	// Cleanup releases everything this driver holds in this process
	// (mounts taken by Get, open handles). The backend's state stays for
	// the next user.
	Cleanup(ctx context.Context) error
}

// DiffDriver is implemented by every backend through NaiveDiff or natively.
type DiffDriver interface {
	// Diff returns a tar stream of id's changes against parent, whiteouts in OCI .wh. form.
	Diff(ctx context.Context, id, parent string) (io.ReadCloser, error)
	// Changes lists paths modified, added or deleted in id relative to parent.
	Changes(ctx context.Context, id, parent string) ([]Change, error)
	// ApplyDiff unpacks a tar stream into id and returns the bytes applied.
	ApplyDiff(ctx context.Context, id, parent string, diff io.Reader) (int64, error)
	// DiffSize returns the size in bytes of id's changes against parent.
	DiffSize(ctx context.Context, id, parent string) (int64, error)
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

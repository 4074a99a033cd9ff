// Package health classifies what is wrong with a thin pool, as classes a
// caller can test with errors.Is and fixes a command line can name: a
// pool that needs a check, is read-only or failed, is out of data or
// metadata space, whose host filesystem cannot hold what its sparse files
// promise, or whose storage returns I/O errors. It reads nothing itself:
// thinpool hands it a reading of the pool's status and of the host
// filesystem (thinpool.Pool.Health).
package health

import (
	"fmt"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/errdefs"
	"github.com/thinctl/thinctl/thinpool/internal/bytesize"
	"github.com/thinctl/thinctl/thinpool/internal/dmthin"
	"github.com/thinctl/thinctl/thinpool/internal/hostfs"
)

// ErrLowSpace is the class of a pool low on free data or metadata space
// (thinpool.ErrLowSpace).
var ErrLowSpace = errdefs.New("thin pool is low on free space", errdefs.ErrNoSpace)

// ErrPoolReadOnly is the class of a pool that is read-only or failed
// (thinpool.ErrPoolReadOnly).
var ErrPoolReadOnly = errdefs.New("thin pool is read-only or failed", nil)

// Fix is what brings an unhealthy pool back, as a class: the CLI maps each
// to the one command that does it (the library never names commands).
type Fix string

// The fixes a health problem names.
const (
	// FixRepair: deactivate the pool, check (and when needed repair) its
	// metadata, activate it again: thinpool.Pool.Repair.
	FixRepair Fix = "repair"
	// FixGrowData: give the pool more data space (thinpool.Pool.Grow) or remove devices.
	FixGrowData Fix = "grow_data"
	// FixGrowMetadata: give the pool more metadata space (thinpool.Pool.Grow).
	FixGrowMetadata Fix = "grow_metadata"
	// FixFreeHostSpace: free space on the filesystem that holds the pool's
	// loop files; growing the pool would only make it worse.
	FixFreeHostSpace Fix = "free_host_space"
	// FixFilesystem: check the named device's filesystem (thinpool.Pool.Fsck).
	FixFilesystem Fix = "fsck"
	// FixStorage: the device under the pool returns I/O errors; no
	// thinctl command fixes that, the storage has to be fixed first.
	FixStorage Fix = "storage"
)

// Health problem kinds; each is also a problem kind in thinpool.Check's
// report.
const (
	ProblemPoolNeedsCheck   = "pool_needs_check"  // the kernel set needs_check in the pool's metadata
	ProblemPoolReadOnly     = "pool_read_only"    // the pool refuses writes that need metadata changes
	ProblemPoolFailed       = "pool_failed"       // the pool is in fail mode: no I/O at all
	ProblemOutOfDataSpace   = "out_of_data_space" // the pool has no free data blocks left
	ProblemOutOfMetaSpace   = "out_of_metadata_space"
	ProblemHostFilesystem   = "host_filesystem_short" // the filesystem under a loop file cannot hold what the pool may write
	ProblemFilesystemErrors = "filesystem_errors"     // a device's filesystem recorded errors
	ProblemStorageIO        = "storage_io_errors"     // the pool's data or metadata device returns I/O errors
)

// ErrStorageIO is the class of a pool whose data or metadata device
// returns I/O errors when read.
var ErrStorageIO = errdefs.New("the storage under the thin pool returns I/O errors", nil)

// ErrHostFilesystemFull is the class of a loop pool whose host filesystem
// cannot hold what the pool may still write. It also matches ErrLowSpace.
var ErrHostFilesystemFull = errors.Wrap(ErrLowSpace, "the filesystem holding the pool's files is short of space")

// ErrPoolNotKept is returned when the pool accepted a message but a status
// read right after shows it did not keep it (the pool went read-only or
// failed, or set needs_check): the operation did not happen as far as the
// caller can tell. It also matches ErrPoolReadOnly.
var ErrPoolNotKept = errors.Wrap(ErrPoolReadOnly, "the pool did not keep the change")

// Problem is one reason the pool is not healthy.
type Problem struct {
	Kind  string // one of the Problem* health kinds
	Class error  // ErrPoolReadOnly, ErrLowSpace or ErrHostFilesystemFull: for errors.Is
	Cause string // what happened, in words
	Fix   Fix    // what brings it back
}

// Error makes a Problem an error of its class.
func (h Problem) Error() string { return h.Cause }

// Unwrap returns the problem's class.
func (h Problem) Unwrap() error { return h.Class }

// Health is the pool's health: healthy when Problems is empty.
type Health struct {
	Problems []Problem
}

// OK reports whether the pool is healthy.
func (h Health) OK() bool { return len(h.Problems) == 0 }

// Err returns the first problem as an error of its class (nil when
// healthy).
func (h Health) Err() error {
	if h.OK() {
		return nil
	}
	return h.Problems[0]
}

// Reading is what Of looks at: the fields of a pool's status (thinpool.Status)
// that say whether it is healthy, in bytes.
type Reading struct {
	PoolName                    string
	State                       string // "rw", "ro", "out_of_data_space", "fail", "down"
	ReadOnly, Failed            bool
	NeedsCheck, OutOfDataSpace  bool
	DataUsed, DataTotal         uint64
	MetadataUsed, MetadataTotal uint64
}

// Of says what is wrong with a pool from one reading of its status and of
// the host filesystem under its loop files (zero Need: no shortfall), in
// the order the problems have to be fixed: the host filesystem first.
func Of(s Reading, host hostfs.Shortfall) Health {
	var h Health
	add := func(kind string, class error, fix Fix, format string, args ...any) {
		h.Problems = append(h.Problems, Problem{Kind: kind, Class: class, Fix: fix, Cause: fmt.Sprintf(format, args...)})
	}
	// The host filesystem comes first: nothing else helps until it has room.
	if host.Need > 0 && host.Free < host.Need {
		add(ProblemHostFilesystem, ErrHostFilesystemFull, FixFreeHostSpace,
			"the filesystem holding %s has %s free but the pool's files may still grow by %s: writes past that fail and can switch the pool to read-only",
			host.Path, bytesize.Format(uint64(host.Free)), bytesize.Format(uint64(host.Need)))
	}
	if s.State == "down" {
		return h
	}
	switch {
	case s.Failed:
		add(ProblemPoolFailed, ErrPoolReadOnly, FixRepair,
			"thin pool %s has failed (the kernel stopped all I/O after a metadata error)", s.PoolName)
	case s.NeedsCheck:
		add(ProblemPoolNeedsCheck, ErrPoolReadOnly, FixRepair,
			"thin pool %s is %s and its metadata needs a check (the kernel aborted a metadata transaction)", s.PoolName, s.State)
	case s.ReadOnly && s.MetadataTotal > 0 && s.MetadataTotal-s.MetadataUsed < s.MetadataTotal/100+dmthin.MetadataBlockSize*16:
		add(ProblemOutOfMetaSpace, ErrLowSpace, FixGrowMetadata,
			"thin pool %s is read-only: its metadata space is used up (%s of %s)", s.PoolName, bytesize.Format(s.MetadataUsed), bytesize.Format(s.MetadataTotal))
	case s.ReadOnly:
		add(ProblemPoolReadOnly, ErrPoolReadOnly, FixRepair, "thin pool %s is read-only", s.PoolName)
	}
	if s.Failed {
		return h
	}
	if s.OutOfDataSpace || (s.DataTotal > 0 && s.DataUsed >= s.DataTotal) {
		add(ProblemOutOfDataSpace, ErrLowSpace, FixGrowData,
			"thin pool %s is out of data space (%s of %s used)", s.PoolName, bytesize.Format(s.DataUsed), bytesize.Format(s.DataTotal))
	}
	if !s.ReadOnly && s.MetadataTotal > 0 && s.MetadataUsed >= s.MetadataTotal {
		add(ProblemOutOfMetaSpace, ErrLowSpace, FixGrowMetadata,
			"thin pool %s is out of metadata space (%s of %s used)", s.PoolName, bytesize.Format(s.MetadataUsed), bytesize.Format(s.MetadataTotal))
	}
	return h
}

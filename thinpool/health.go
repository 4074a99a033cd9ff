package thinpool

import (
	"fmt"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/fs"
	"github.com/thinctl/thinctl/thinpool/internal/devnode"
	"github.com/thinctl/thinctl/thinpool/internal/health"
	"github.com/thinctl/thinctl/thinpool/internal/hostfs"
)

// Fix is what brings an unhealthy pool back, as a class: the CLI maps each
// to the one command that does it (the library never names commands).
type Fix = health.Fix

// The fixes a health problem names (see package health for each).
const (
	FixRepair        = health.FixRepair        // Repair
	FixGrowData      = health.FixGrowData      // Grow the data, or remove devices
	FixGrowMetadata  = health.FixGrowMetadata  // Grow the metadata
	FixFreeHostSpace = health.FixFreeHostSpace // free space on the loop files' host filesystem
	FixFilesystem    = health.FixFilesystem    // Fsck the named device
	FixStorage       = health.FixStorage       // fix the storage under the pool first
)

// Health problem kinds; each is also a Problem kind in Check's report.
const (
	ProblemPoolNeedsCheck   = health.ProblemPoolNeedsCheck   // "pool_needs_check": the kernel set needs_check
	ProblemPoolReadOnly     = health.ProblemPoolReadOnly     // "pool_read_only"
	ProblemPoolFailed       = health.ProblemPoolFailed       // "pool_failed": no I/O at all
	ProblemOutOfDataSpace   = health.ProblemOutOfDataSpace   // "out_of_data_space"
	ProblemOutOfMetaSpace   = health.ProblemOutOfMetaSpace   // "out_of_metadata_space"
	ProblemHostFilesystem   = health.ProblemHostFilesystem   // "host_filesystem_short": loop files may outgrow it
	ProblemFilesystemErrors = health.ProblemFilesystemErrors // "filesystem_errors" of a device
	ProblemStorageIO        = health.ProblemStorageIO        // "storage_io_errors" under the pool
)

// ErrStorageIO is the class of a pool whose data or metadata device
// returns I/O errors when read.
var ErrStorageIO = health.ErrStorageIO

// ErrHostFilesystemFull is the class of a loop pool whose host filesystem
// cannot hold what the pool may still write. It also matches ErrLowSpace.
var ErrHostFilesystemFull = health.ErrHostFilesystemFull

// ErrPoolNotKept is returned when the pool accepted a message but a status
// read right after shows it did not keep it (the pool went read-only or
// failed, or set needs_check). It also matches ErrPoolReadOnly.
var ErrPoolNotKept = health.ErrPoolNotKept

// HealthProblem is one reason the pool is not healthy (Kind, Class for
// errors.Is, Cause in words, Fix).
type HealthProblem = health.Problem

// Health is the pool's health: healthy when Problems is empty (OK, Err,
// Refusal).
type Health = health.Health

// HealthError is a refusal because the pool is not healthy. errors.Is
// matches the class of every problem it carries; errors.As gives the
// problems in the order they have to be fixed (the host filesystem first).
type HealthError = health.Error

// Health reads the pool's status (without a metadata commit) and the free
// space of the filesystem under its loop files, and says what is wrong.
func (p *Pool) Health() (Health, error) {
	if err := p.lk.Lock(); err != nil {
		return Health{}, err
	}
	defer p.lk.Unlock()
	return p.healthLocked()
}

func (p *Pool) healthLocked() (Health, error) {
	s, err := p.statusLocked()
	if err != nil {
		return Health{}, err
	}
	h := healthOf(s, p.hostShortfall())
	if s.State != "down" {
		h.Problems = append(p.probeStorage(), h.Problems...)
	}
	return h, nil
}

// probeStorage reads the first 4 KiB of the pool's data and metadata
// devices, bypassing the page cache, and reports each that fails with an
// I/O error: a fault under the pool the kernel's pool status does not show
// until it hits a metadata commit.
func (p *Pool) probeStorage() []HealthProblem {
	meta, data, err := p.poolTableDevices()
	if err != nil {
		return nil
	}
	var out []HealthProblem
	for _, d := range []struct{ what, majMin string }{{"metadata", meta}, {"data", data}} {
		path, err := fs.DevicePath(d.majMin)
		if err != nil {
			continue
		}
		if err := devnode.ReadHead(path); errors.Is(err, unix.EIO) {
			out = append(out, HealthProblem{Kind: ProblemStorageIO, Class: ErrStorageIO, Fix: FixStorage,
				Cause: fmt.Sprintf("the pool's %s device %s returns I/O errors", d.what, path)})
		}
	}
	return out
}

// hostShortfall is how far the filesystem holding the pool's loop files
// falls short of what the sparse files may still grow by (zero Need for
// a pool without loop files).
func (p *Pool) hostShortfall() hostfs.Shortfall {
	if p.cfg.DataFile == "" {
		return hostfs.Shortfall{}
	}
	return hostfs.Short(p.dataFilePath(), p.metaFilePath())
}

// addHealth puts the pool's health problems at the head of a check's
// report: no Repair fixes them.
func (p *Pool) addHealth(r *Report) error {
	h, err := p.healthLocked()
	if err != nil {
		return err
	}
	for _, hp := range h.Problems {
		r.Problems = append(r.Problems, Problem{Kind: hp.Kind, Detail: hp.Cause, Fix: hp.Fix})
	}
	return nil
}

// healthOf is Health's classification of one status reading (package
// health).
func healthOf(s Status, host hostfs.Shortfall) Health {
	return health.Of(health.Reading{PoolName: s.PoolName, State: s.State, ReadOnly: s.ReadOnly, Failed: s.Failed,
		NeedsCheck: s.NeedsCheck, OutOfDataSpace: s.OutOfDataSpace, DataUsed: s.DataUsed, DataTotal: s.DataTotal,
		MetadataUsed: s.MetadataUsed, MetadataTotal: s.MetadataTotal}, host)
}

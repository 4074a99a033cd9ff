package thinpool

import (
	"fmt"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/errdefs"
	"github.com/thinctl/thinctl/fs"
	"github.com/thinctl/thinctl/thinpool/internal/dmthin"
	"github.com/thinctl/thinctl/thinpool/internal/hostfs"
	"github.com/thinctl/thinctl/thinpool/internal/units"
)

// Fix is what brings an unhealthy pool back, as a class: the CLI maps each
// to the one command that does it (the library never names commands).
type Fix string

// The fixes a health problem names.
const (
	// FixRepair: deactivate the pool, check (and when needed repair) its
	// metadata, activate it again: Repair.
	FixRepair Fix = "repair"
	// FixGrowData: give the pool more data space (Grow) or remove devices.
	FixGrowData Fix = "grow_data"
	// FixGrowMetadata: give the pool more metadata space (Grow).
	FixGrowMetadata Fix = "grow_metadata"
	// FixFreeHostSpace: free space on the filesystem that holds the pool's
	// loop files; growing the pool would only make it worse.
	FixFreeHostSpace Fix = "free_host_space"
	// FixFilesystem: check the named device's filesystem (Fsck).
	FixFilesystem Fix = "fsck"
	// FixStorage: the device under the pool returns I/O errors; no
	// thinctl command fixes that, the storage has to be fixed first.
	FixStorage Fix = "storage"
)

// Health problem kinds; each is also a Problem kind in Check's report.
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

// HealthProblem is one reason the pool is not healthy.
type HealthProblem struct {
	Kind  string // one of the Problem* health kinds
	Class error  // ErrPoolReadOnly, ErrLowSpace or ErrHostFilesystemFull: for errors.Is
	Cause string // what happened, in words
	Fix   Fix    // what brings it back
}

// Error makes a HealthProblem an error of its class.
func (h HealthProblem) Error() string { return h.Cause }

// Unwrap returns the problem's class.
func (h HealthProblem) Unwrap() error { return h.Class }

// Health is the pool's health: healthy when Problems is empty.
type Health struct {
	Problems []HealthProblem
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
		if err := readDirect(path); errors.Is(err, unix.EIO) {
			out = append(out, HealthProblem{Kind: ProblemStorageIO, Class: ErrStorageIO, Fix: FixStorage,
				Cause: fmt.Sprintf("the pool's %s device %s returns I/O errors", d.what, path)})
		}
	}
	return out
}

// readDirect reads the first 4 KiB of path with O_DIRECT.
func readDirect(path string) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	buf, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return err
	}
	defer unix.Munmap(buf)
	_, err = unix.Pread(fd, buf, 0)
	return err
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

// healthOf is the pure part of Health.
func healthOf(s Status, host hostfs.Shortfall) Health {
	var h Health
	add := func(kind string, class error, fix Fix, format string, args ...any) {
		h.Problems = append(h.Problems, HealthProblem{Kind: kind, Class: class, Fix: fix, Cause: fmt.Sprintf(format, args...)})
	}
	// The host filesystem comes first: nothing else helps until it has room.
	if host.Need > 0 && host.Free < host.Need {
		add(ProblemHostFilesystem, ErrHostFilesystemFull, FixFreeHostSpace,
			"the filesystem holding %s has %s free but the pool's files may still grow by %s: writes past that fail and can switch the pool to read-only",
			host.Path, units.FormatBytes(uint64(host.Free)), units.FormatBytes(uint64(host.Need)))
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
			"thin pool %s is read-only: its metadata space is used up (%s of %s)", s.PoolName, units.FormatBytes(s.MetadataUsed), units.FormatBytes(s.MetadataTotal))
	case s.ReadOnly:
		add(ProblemPoolReadOnly, ErrPoolReadOnly, FixRepair, "thin pool %s is read-only", s.PoolName)
	}
	if s.Failed {
		return h
	}
	if s.OutOfDataSpace || (s.DataTotal > 0 && s.DataUsed >= s.DataTotal) {
		add(ProblemOutOfDataSpace, ErrLowSpace, FixGrowData,
			"thin pool %s is out of data space (%s of %s used)", s.PoolName, units.FormatBytes(s.DataUsed), units.FormatBytes(s.DataTotal))
	}
	if !s.ReadOnly && s.MetadataTotal > 0 && s.MetadataUsed >= s.MetadataTotal {
		add(ProblemOutOfMetaSpace, ErrLowSpace, FixGrowMetadata,
			"thin pool %s is out of metadata space (%s of %s used)", s.PoolName, units.FormatBytes(s.MetadataUsed), units.FormatBytes(s.MetadataTotal))
	}
	return h
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

// HealthError is a refusal because the pool is not healthy. errors.Is
// matches the class of every problem it carries (ErrPoolReadOnly,
// ErrLowSpace, ErrHostFilesystemFull); errors.As gives the problems in
// the order they have to be fixed (the host filesystem first).
type HealthError struct {
	Problems []HealthProblem
	// NotKept is the pool message the pool accepted but did not keep
	// ("" for a refusal before anything was sent); the error then also
	// matches ErrPoolNotKept.
	NotKept string
}

// Error names the message the pool did not keep, if any, then each
// problem's cause.
func (e *HealthError) Error() string {
	s := ""
	if e.NotKept != "" {
		s = "the pool accepted \"" + e.NotKept + "\" but did not keep it: "
	}
	for i, hp := range e.Problems {
		if i > 0 {
			s += "; "
		}
		s += hp.Cause
	}
	return s
}

// Is matches the class of any of the problems.
func (e *HealthError) Is(target error) bool {
	if e.NotKept != "" && (target == ErrPoolNotKept || target == ErrPoolReadOnly) {
		return true
	}
	for _, hp := range e.Problems {
		if errors.Is(hp.Class, target) {
			return true
		}
	}
	return false
}

// Fixes lists the fixes in the order they apply, without repeats.
func (e *HealthError) Fixes() []Fix {
	var out []Fix
	seen := map[Fix]bool{}
	for _, hp := range e.Problems {
		if !seen[hp.Fix] {
			seen[hp.Fix] = true
			out = append(out, hp.Fix)
		}
	}
	return out
}

// refusal is the HealthError a write refuses with, nil when nothing
// stops writes: a short host filesystem alone does not (the pool may
// never fill what it promised) but is named with any problem that does.
func (h Health) refusal() error {
	blocking := false
	for _, hp := range h.Problems {
		if hp.Kind != ProblemHostFilesystem {
			blocking = true
		}
	}
	if !blocking {
		return nil
	}
	return &HealthError{Problems: h.Problems}
}

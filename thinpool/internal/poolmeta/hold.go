// Package poolmeta reads a thin pool's metadata from userspace while the
// pool runs: it holds a metadata root (reserve_metadata_snap and
// release_metadata_snap, with a marker file so that only a root its owner
// reserved is ever released) and walks the held or the live root on the
// metadata device with O_DIRECT through internal/thinmeta.
package poolmeta

import (
	"os"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/dm"
	"github.com/thinctl/thinctl/internal/failpoint"
	"github.com/thinctl/thinctl/thinpool/internal/dmthin"
)

// UnavailableError says why the pool's held metadata root could not be
// read (another program holds it, the pool does not answer); nothing is
// left held.
type UnavailableError struct{ Reason string }

// Error returns the reason.
func (e *UnavailableError) Error() string { return e.Reason }

// Hold reserves the held metadata root of thin pool pool
// (reserve_metadata_snap), runs fn while it is held (with the pool's status
// as status read it just before), and releases it: the one place thinctl
// holds one. The file marker says the root is held by this pool's owner. A held root a killed
// holder of this root left (the marker file says so) is released first, and
// a note says so; one another program holds is left alone (a
// *UnavailableError, as is a refused reserve). An error wrapping
// neither means the held root this call reserved could not be released
// (the marker stays, and the next call releases it) or the marker could
// not be written; fn's own error is returned as it is.
//
// The marker is written without a flush: it has to outlive the process
// (the page cache does), not a power cut. After a power cut that lost it,
// a held root at that moment looks like another program's and is left
// alone — never the other way round.
func Hold(c *dm.Client, pool, marker string, status func() (dmthin.PoolStatus, error), fn func(dmthin.PoolStatus) error) ([]string, error) {
	var notes []string
	st, err := status()
	if err != nil {
		return nil, &UnavailableError{err.Error()}
	}
	_, markerErr := os.Stat(marker)
	switch {
	case st.HeldRoot != "-" && markerErr == nil:
		if _, err := c.Message(pool, 0, dm.ThinReleaseMetadataSnap); err != nil {
			return nil, errors.Wrapf(err, "release the held metadata root (root %s) an interrupted holder of this root left held", st.HeldRoot)
		}
		notes = append(notes, "released the held metadata root (root "+st.HeldRoot+") an interrupted check or space return left held")
	case st.HeldRoot != "-":
		return nil, &UnavailableError{"another program holds the pool's held metadata root (root " + st.HeldRoot + "); it was left alone"}
	}
	f, err := os.OpenFile(marker, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return notes, errors.Wrap(err, "mark the pool's held metadata root as this root's")
	}
	f.Close()
	if _, err := c.Message(pool, 0, dm.ThinReserveMetadataSnap); err != nil {
		os.Remove(marker)
		return notes, &UnavailableError{dm.ThinReserveMetadataSnap + ": " + err.Error()}
	}
	failpoint.Inject(failpoint.CheckAfterReserve)
	fnErr := fn(st)
	if _, err := c.Message(pool, 0, dm.ThinReleaseMetadataSnap); err != nil {
		return notes, errors.Wrapf(err, "release the pool's held metadata root; it stays held and the next check or space return releases it")
	}
	os.Remove(marker)
	return notes, fnErr
}

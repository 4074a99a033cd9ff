// Package unixsock makes the unix sockets thinctl's servers (the
// containerd snapshotter, the CSI driver) listen on: connectable by their
// owner alone from the first moment they exist.
package unixsock

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/errdefs"
)

// Errors of Listen; both also match errdefs.ErrInvalidArgument or
// errdefs.ErrBusy so that callers can choose their hint.
var (
	// ErrNotSocket: something other than a socket is at the path.
	ErrNotSocket = errdefs.New("exists and is not a socket", errdefs.ErrInvalidArgument)
	// ErrInUse: a live server answers on the path.
	ErrInUse = errdefs.New("something already serves it", errdefs.ErrBusy)
)

// maxPath is the longest path a unix socket can be bound to (sun_path
// holds 108 bytes with the terminating NUL).
const maxPath = 107

// Listen listens on a new unix socket at path that only its owner can
// connect to. Missing directories above path are made 0700. A stale socket
// at path (nothing answers it) is replaced; anything else there is
// refused (ErrNotSocket, ErrInUse). The socket is bound in a private 0700
// directory beside path, given mode 0600 there and renamed into place, so
// it appears at path with its final mode; the process's umask, which every
// goroutine shares, is left alone. Closing the listener does not remove
// the socket: the caller removes path when it stops.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, errors.Wrapf(err, "create the directory of %s", path)
	}
	if st, err := os.Lstat(path); err == nil {
		if st.Mode()&os.ModeSocket == 0 {
			return nil, errors.Wrapf(ErrNotSocket, "%s", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, errors.Wrapf(ErrInUse, "%s", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, errors.Wrapf(err, "remove the stale socket %s", path)
		}
	}

	// Bind in a directory only the owner can enter.
	priv, err := os.MkdirTemp(filepath.Dir(path), ".sock-")
	if err != nil {
		return nil, errors.Wrapf(err, "create a private directory beside %s", path)
	}
	defer os.RemoveAll(priv)
	tmp := filepath.Join(priv, "s")
	bindPath := tmp
	if len(bindPath) > maxPath {
		// The private directory's name made the path too long for a
		// socket: bind through the directory's descriptor instead.
		d, err := os.Open(priv)
		if err != nil {
			return nil, errors.Wrapf(err, "open %s", priv)
		}
		defer d.Close()
		bindPath = fmt.Sprintf("/proc/self/fd/%d/s", d.Fd())
	}
	l, err := net.Listen("unix", bindPath)
	if err != nil {
		return nil, errors.Wrapf(err, "listen on %s", path)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)

	// Give it its final mode, then its final name.
	if err := os.Chmod(tmp, 0o600); err != nil {
		l.Close()
		return nil, errors.Wrapf(err, "chmod the new socket %s", tmp)
	}
	if err := os.Rename(tmp, path); err != nil {
		l.Close()
		return nil, errors.Wrapf(err, "move the new socket to %s", path)
	}
	return l, nil
}

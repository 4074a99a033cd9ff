package dockerdm

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/errdefs"
)

// ErrHeld is returned while a process (a dockerd, its containerd) holds
// files of the store open. It matches errdefs.ErrBusy.
var ErrHeld = errdefs.New("the Docker store is in use", errdefs.ErrBusy)

// Holder is a process that has a file of the store open.
type Holder struct {
	PID  int    `json:"pid"`
	Comm string `json:"comm"`
	// Path is one of the files it holds.
	Path string `json:"path"`
}

// String reads "pid 123 (dockerd) holds PATH".
func (h Holder) String() string {
	return fmt.Sprintf("pid %d (%s) holds %s", h.PID, h.Comm, h.Path)
}

// FindHolders lists the processes with a file under root open, or their
// working directory or root there, read from procfs (procRoot, "/proc"
// when empty). A running dockerd always holds some (its bolt databases
// under root), and so does the containerd it started.
func FindHolders(procRoot, root string) ([]Holder, error) {
	if procRoot == "" {
		procRoot = "/proc"
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, errors.Wrapf(err, "docker data root %s", root)
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		abs = r
	}
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, errors.Wrapf(err, "list processes in %s", procRoot)
	}
	self := os.Getpid()
	var out []Holder
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		pdir := filepath.Join(procRoot, e.Name())
		if p := heldPath(pdir, abs); p != "" {
			comm, _ := os.ReadFile(filepath.Join(pdir, "comm"))
			out = append(out, Holder{PID: pid, Comm: strings.TrimSpace(string(comm)), Path: p})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PID < out[j].PID })
	return out, nil
}

// heldPath returns a path under root that the process in pdir holds, or "".
func heldPath(pdir, root string) string {
	under := func(p string) bool { return p == root || strings.HasPrefix(p, root+"/") }
	for _, l := range []string{"cwd", "root"} {
		if p, err := os.Readlink(filepath.Join(pdir, l)); err == nil && under(p) && p != "/" {
			return p
		}
	}
	fds, err := os.ReadDir(filepath.Join(pdir, "fd"))
	if err != nil {
		return "" // gone, or not ours to read
	}
	for _, fd := range fds {
		p, err := os.Readlink(filepath.Join(pdir, "fd", fd.Name()))
		if err == nil && under(strings.TrimSuffix(p, " (deleted)")) {
			return p
		}
	}
	return ""
}

// CheckNotHeld returns ErrHeld naming the first holder, when there is one.
func CheckNotHeld(root string) error {
	hs, err := FindHolders("", root)
	if err != nil {
		return err
	}
	if len(hs) == 0 {
		return nil
	}
	more := ""
	if len(hs) > 1 {
		more = fmt.Sprintf(" and %d other process(es)", len(hs)-1)
	}
	return errors.Wrapf(ErrHeld, "%s%s", hs[0], more)
}

package overlay2

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/driver"
)

// stagingPrefix starts the name of the directory a layer is built in
// before the rename that publishes it. Layer ids never start with ".", so
// listings skip it.
const stagingPrefix = ".creating-"

// staging is a layer being built. Its directory is flocked for as long as
// the creator runs, so that a cleanup in another process can tell a
// creation in progress from one a crash left behind.
type staging struct {
	dir string
	f   *os.File
}

func (d *Driver) newStaging(id string) (*staging, error) {
	dir, err := os.MkdirTemp(d.home, stagingPrefix+id+"-")
	if err != nil {
		return nil, errors.Wrapf(err, "create a staging directory for layer %s", id)
	}
	f, err := os.Open(dir)
	if err == nil {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
	}
	if err != nil {
		if f != nil {
			f.Close()
		}
		os.RemoveAll(dir)
		return nil, errors.Wrapf(err, "lock staging directory %s", dir)
	}
	return &staging{dir: dir, f: f}, nil
}

// close releases the lock (the directory itself is renamed or removed by
// the creator).
func (s *staging) close() { s.f.Close() }

// staleStaging returns the staging directories no living creator holds:
// what an interrupted create left.
func (d *Driver) staleStaging() ([]string, error) {
	ents, err := os.ReadDir(d.home)
	if err != nil {
		return nil, errors.Wrapf(err, "list %s", d.home)
	}
	var out []string
	for _, e := range ents {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), stagingPrefix) {
			continue
		}
		p := filepath.Join(d.home, e.Name())
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
			out = append(out, p)
		}
		f.Close()
	}
	return out, nil
}

// checkStaging reports (and with repair removes) what interrupted creates
// left: staging directories and the l/ links made for them, which resolve
// to no layer.
func (d *Driver) checkStaging(repair bool) ([]driver.Problem, error) {
	stale, err := d.staleStaging()
	if err != nil {
		return nil, err
	}
	var problems []driver.Problem
	for _, p := range stale {
		pr := driver.Problem{Kind: "interrupted_create", ID: leftoverID(p, stagingPrefix),
			Detail: p + " is what an interrupted create of the layer left; the layer does not exist"}
		if repair {
			if b, err := os.ReadFile(filepath.Join(p, linkFileName)); err == nil && validLinkName(string(b)) {
				lp := filepath.Join(d.home, linkDir, string(b))
				if target, err := os.Readlink(lp); err == nil && !d.Exists(filepath.Base(filepath.Dir(target))) {
					os.Remove(lp)
				}
			}
			pr.Fixed = os.RemoveAll(p) == nil
		}
		problems = append(problems, pr)
	}
	return problems, nil
}

// leftoverID returns the layer id in the name of p, a directory named
// prefix + id + "-" + a random suffix (a staging or a removed layer's
// directory).
func leftoverID(p, prefix string) string {
	id := strings.TrimPrefix(filepath.Base(p), prefix)
	if i := strings.LastIndexByte(id, '-'); i > 0 {
		id = id[:i]
	}
	return id
}

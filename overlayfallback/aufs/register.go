package aufs

import (
	"os"
	"path/filepath"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/driver"
)

func init() { driver.Register(Name, backend{}) }

// backend is how driver.Select finds aufs.
type backend struct{}

// Probe reports whether aufs can run here: the kernel must list aufs in
// /proc/filesystems (after an attempt to load the module) and the process
// must be root to mount.
func (backend) Probe(root string) error {
	if err := Supported(); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.Wrap(driver.ErrPrerequisitesMissing, "aufs: mounting needs root (CAP_SYS_ADMIN); run thinctl as root")
	}
	return nil
}

// HasLayers reports whether home holds at least one aufs layer.
func (backend) HasLayers(home string) bool {
	ents, err := os.ReadDir(filepath.Join(home, layersDir))
	if err != nil {
		return false
	}
	for _, e := range ents {
		if validateID(e.Name()) != nil {
			continue
		}
		if fi, err := os.Stat(filepath.Join(home, diffDir, e.Name())); err == nil && fi.IsDir() {
			return true
		}
	}
	return false
}

// New opens the driver in home.
func (backend) New(home string, opts driver.Options) (driver.Driver, error) {
	return New(home, opts)
}

package overlay2

import (
	"os"
	"path/filepath"

	"github.com/thinctl/thinctl/driver"
)

func init() { driver.Register(Name, Backend{}) }

// Backend is overlay2's driver.Backend, registered as "overlay2".
type Backend struct{}

// Probe reports whether overlay2 can run with its home under root.
func (Backend) Probe(root string) error { return probe(filepath.Join(root, Name)) }

// HasLayers reports whether home holds at least one overlay2 layer
// (a directory with a diff/ subdirectory).
func (Backend) HasLayers(home string) bool {
	ents, err := os.ReadDir(home)
	if err != nil {
		return false
	}
	for _, e := range ents {
		if !e.IsDir() || validID(e.Name()) != nil {
			continue
		}
		if fi, err := os.Stat(filepath.Join(home, e.Name(), diffDirName)); err == nil && fi.IsDir() {
			return true
		}
	}
	return false
}

// New opens overlay2 in home.
func (Backend) New(home string, opts driver.Options) (driver.Driver, error) {
	return New(home, opts)
}

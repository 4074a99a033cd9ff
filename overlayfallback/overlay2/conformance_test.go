package overlay2

import (
	"testing"

	"github.com/thinctl/thinctl/driver"
	"github.com/thinctl/thinctl/driver/drivertest"
)

// newTestDriver opens overlay2 in a fresh temporary home, skipping when
// this host cannot run it.
func newTestDriver(t *testing.T) *Driver {
	t.Helper()
	if err := probe(t.TempDir()); err != nil {
		t.Skipf("overlay2 cannot run here: %v", err)
	}
	d, err := New(t.TempDir(), driver.Options{})
	if err != nil {
		t.Skipf("overlay2 cannot run here: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Cleanup(t.Context()); err != nil {
			t.Errorf("Cleanup: %v", err)
		}
	})
	return d
}

func TestOverlay2PassesTheDriverConformanceSuite(t *testing.T) {
	drivertest.Run(t, func(t *testing.T) driver.Driver { return newTestDriver(t) })
}

// TestOverlay2WithNaiveDiffPassesTheSuite runs the suite the way a kernel
// with redirect_dir or metacopy would have it: diffs by mounting and
// comparing instead of reading diff/.
func TestOverlay2WithNaiveDiffPassesTheSuite(t *testing.T) {
	drivertest.Run(t, func(t *testing.T) driver.Driver {
		d := newTestDriver(t)
		d.nativeDiff = false
		return d
	})
}

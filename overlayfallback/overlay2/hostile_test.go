package overlay2

import (
	"testing"

	"github.com/thinctl/thinctl/driver"
	"github.com/thinctl/thinctl/driver/drivertest"
)

// TestOverlay2SurvivesEveryHostileArchive imports the hostile-archive
// catalogue into overlay2 layers (native diff: the stream lands in the
// layer's upper directory with overlay whiteouts).
func TestOverlay2SurvivesEveryHostileArchive(t *testing.T) {
	drivertest.RunHostile(t, func(t *testing.T) driver.Driver { return newTestDriver(t) })
}

// TestOverlay2WithNaiveDiffSurvivesEveryHostileArchive does it through
// the mounted union view, as kernels with redirect_dir or metacopy do.
func TestOverlay2WithNaiveDiffSurvivesEveryHostileArchive(t *testing.T) {
	drivertest.RunHostile(t, func(t *testing.T) driver.Driver {
		d := newTestDriver(t)
		d.nativeDiff = false
		return d
	})
}

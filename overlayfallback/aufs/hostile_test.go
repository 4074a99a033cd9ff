package aufs

import (
	"testing"

	"github.com/thinctl/thinctl/driver"
	"github.com/thinctl/thinctl/driver/drivertest"
)

// TestAufsSurvivesEveryHostileArchive imports the hostile-archive
// catalogue into aufs layers (aufs whiteout files); kernels without aufs
// skip it, as TestConformance does.
func TestAufsSurvivesEveryHostileArchive(t *testing.T) {
	if _, err := (backend{}).Probe(t.TempDir()); err != nil {
		t.Skipf("aufs not available: %v", err)
	}
	drivertest.RunHostile(t, func(t *testing.T) driver.Driver {
		d, err := New(t.TempDir(), driver.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Cleanup(t.Context()) })
		return d
	})
}

package aufs

import (
	"errors"
	"testing"

	"github.com/thinctl/thinctl/driver"
	"github.com/thinctl/thinctl/driver/drivertest"
)

// TestConformance runs the shared driver suite against real aufs mounts.
// Kernels without aufs (mainline, and the build machines and test VM) skip
// it with the reason; everything that needs no mount is tested above with a
// fake kernel.
func TestConformance(t *testing.T) {
	if _, err := (backend{}).Probe(t.TempDir()); err != nil {
		if !errors.Is(err, driver.ErrNotSupported) && !errors.Is(err, driver.ErrPrerequisitesMissing) {
			t.Fatalf("probe failed with an unclassified error: %v", err)
		}
		t.Skipf("aufs not available: %v", err)
	}
	// aufs is commonly built with CONFIG_AUFS_BRANCH_MAX_127: a chain of
	// 127 layers is the deepest such a module mounts.
	cfg := drivertest.Config{ChainLength: 127}
	drivertest.RunWithConfig(t, cfg, func(t *testing.T) driver.Driver {
		d, err := New(t.TempDir(), driver.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Cleanup(t.Context()) })
		return d
	})
}

//go:build vm

package devicemapper

import (
	"context"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/driver"
	"github.com/thinctl/thinctl/driver/drivertest"
	"github.com/thinctl/thinctl/internal/testenv"
)

// TestHostileArchivesChangeNothingOutsideAThinLayer imports the
// hostile-archive catalogue into thin devices of a small pool: each layer
// is a mounted filesystem of its own, so the size cases meet the 256 MiB
// base device's free space, and a refused import's layer is removed.
func TestHostileArchivesChangeNothingOutsideAThinLayer(t *testing.T) {
	testenv.RequireDeviceMapper(t)
	// The applier resolves paths with openat2 (Linux 5.6); prove this
	// kernel has it, so the runs below are not the fallback's.
	fd, err := unix.Openat2(unix.AT_FDCWD, "/", &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT})
	if err != nil {
		t.Fatalf("openat2 with RESOLVE_IN_ROOT on this kernel: %v", err)
	}
	unix.Close(fd)
	drivertest.RunHostile(t, func(t *testing.T) driver.Driver {
		root := t.TempDir()
		d, err := (Backend{}).Init(t.Context(), root, driver.Options{StorageOpt: smallPool})
		if err != nil {
			t.Fatalf("Init: %v", err)
		}
		t.Cleanup(func() {
			if err := d.Cleanup(context.Background()); err != nil {
				t.Errorf("Cleanup: %v", err)
			}
			tearDown(t, root)
		})
		return d
	})
}

//go:build vm

package overlay2

import (
	"fmt"
	"os"
	"testing"
)

// TestMain runs the package once per make test: overlay2 involves no
// device-mapper and nothing udev acts on, so in the VM rig's boot with udev
// (THINCTL_VM_MODE=udev) the package's tests — about a minute of conformance
// suites and deep chains under emulation — are left to the boot without it.
func TestMain(m *testing.M) {
	if os.Getenv("THINCTL_VM_MODE") == "udev" && os.Getenv("THINCTL_OVERLAY2_IN_UDEV_BOOT") == "" {
		fmt.Println("overlay2: the boot without udev runs this package (THINCTL_OVERLAY2_IN_UDEV_BOOT=1 runs it here too)")
		os.Exit(0)
	}
	os.Exit(m.Run())
}

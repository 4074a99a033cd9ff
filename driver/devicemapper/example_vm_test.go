//go:build vm

package devicemapper_test

import (
	"testing"

	"github.com/thinctl/thinctl/internal/testenv"
)

// TestTheExamplesRun runs Example, which needs a kernel with dm-thin-pool
// and so has no Output line for go test to run it by.
func TestTheExamplesRun(t *testing.T) {
	testenv.RequireDeviceMapper(t)
	Example()
}

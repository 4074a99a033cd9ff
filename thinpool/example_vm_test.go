//go:build vm

package thinpool_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/thinctl/thinctl/internal/testenv"
	"github.com/thinctl/thinctl/thinpool"
)

// The package example needs root and dm-thin-pool, so go test only
// compiles it; here it runs as written (a failure ends the binary through
// log.Fatal) and must leave nothing behind.
func TestTheExampleRunsAsWritten(t *testing.T) {
	testenv.RequireDeviceMapper(t)
	Example()
	if thinpool.Exists(filepath.Join(os.TempDir(), "thinctl-example")) {
		t.Fatal("the example left its pool behind")
	}
}

//go:build vm

package reliability

import (
	"strings"
	"testing"

	"github.com/thinctl/thinctl/internal/failpoint"
)

// A test build of thinctl that cannot use THINCTL_FAILPOINTS (a misspelled
// point, an unknown action) refuses to run instead of running with nothing
// armed, which would let a crash test pass without crashing anything.
func TestReliabilityAnUnusableFailpointSpecIsRefused(t *testing.T) {
	r := newRig(t, t.TempDir())
	res := r.runEnv([]string{failpoint.Env + "=thinpool/tx/after-mesage=kill"}, "version")
	if res.code != 2 || !strings.Contains(res.stderr, failpoint.Env) || !strings.Contains(res.stderr, "after-mesage") {
		t.Fatalf("thinctl with a misspelled failpoint: %s", res)
	}
}

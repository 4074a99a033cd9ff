//go:build vm

package reliability

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/thinctl/thinctl/internal/failpoint"
)

// inFlightSleep is how long the slow create stays in flight: longer than
// two killed creates and four concurrent ones take in the TCG guest (1-3 s).
const inFlightSleep = 10 * time.Second

// TestReliabilityCrashWithSeveralTransactionsInFlight: while one create
// waits between its durable begin and its message (a sleep failpoint: its
// owner is alive, its transaction open in the journal), two creates are
// killed, one before its message and one after, and four more run at
// once. The others recover the two dead creates and never the live one;
// the sleeper then finishes. Registry, thin_dump and the kernel agree.
func TestReliabilityCrashWithSeveralTransactionsInFlight(t *testing.T) {
	if udevMode && !full {
		t.Skip("runs in the boot without udev (the journal and its claims do not depend on udev); THINCTL_RELIABILITY_FULL=1 runs it here too")
	}
	r := newPoolRig(t, "")
	requireFailpoints(t, r)
	journal := filepath.Join(r.root, "devicemapper", "journal")

	slow := r.command([]string{failpoint.Env + "=" + failpoint.TxAfterSave + "=sleep:" + inFlightSleep.String()}, "create", "slow")
	var slowOut, slowErr bytes.Buffer
	slow.Stdout, slow.Stderr = &slowOut, &slowErr
	start := time.Now()
	if err := slow.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if b, _ := os.ReadFile(journal); bytes.Contains(b, []byte(`"id":"slow"`)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the slow create never wrote its begin")
		}
	}

	for _, k := range []struct{ id, point string }{{"killed-before", failpoint.TxAfterSave}, {"killed-after", failpoint.TxAfterMessage}} {
		if res := r.runEnv([]string{failpoint.Env + "=" + k.point + "=kill"}, "create", k.id); res.signal != syscall.SIGKILL {
			t.Fatalf("create %s was not killed at %s: %s", k.id, k.point, res)
		}
	}
	results := make(chan result, 4)
	for i := range 4 {
		go func() {
			args := []string{"create", fmt.Sprintf("c%d", i)}
			cmd := r.command(nil, args...)
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			begun := time.Now()
			if err := cmd.Start(); err != nil {
				results <- result{args: args, code: -1, stderr: err.Error()}
				return
			}
			results <- finish(cmd, args, &out, &errb, begun)
		}()
	}
	for range 4 {
		if res := <-results; res.code != 0 {
			t.Errorf("a create beside the transactions in flight failed: %s", res)
		}
	}
	if took := time.Since(start); took >= inFlightSleep {
		t.Fatalf("the other creates took %v, longer than the slow one's sleep: nothing was in flight beside them", took)
	}
	res := finish(slow, []string{"create", "slow"}, &slowOut, &slowErr, start)
	if res.code != 0 {
		t.Fatalf("the create in flight failed (recovered under its owner?): %s", res)
	}

	var ids []string
	for _, d := range r.list() {
		ids = append(ids, d.ID)
	}
	sort.Strings(ids)
	if got, want := strings.Join(ids, ","), "c0,c1,c2,c3,killed-after,slow"; got != want {
		t.Errorf("devices %s, want %s (killed-before never reached the pool; killed-after did)", got, want)
	}
	r.assertConsistent(t)
	r.assertPoolMatchesRegistry(t)
}

//go:build vm

package thinpool

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/thinctl/thinctl/dm"
	"github.com/thinctl/thinctl/internal/failpoint"
)

// heldRoot is the held metadata root field of the pool's status as dmsetup
// (the oracle) prints it: "-" when none is held.
func heldRoot(t *testing.T, pool string) string {
	t.Helper()
	f := strings.Fields(mustDmsetup(t, "status", pool))
	if len(f) < 7 || f[2] != "thin-pool" {
		t.Fatalf("dmsetup status %s: %q", pool, f)
	}
	return f[6]
}

// checkKilledEnv names the root TestHelperCheckKilledAfterReserve checks.
const checkKilledEnv = "THINCTL_TEST_CHECK_KILLED_ROOT"

// TestHelperCheckKilledAfterReserve is run as a separate process by
// TestCheckReleasesTheHeldMetadataRootAKilledCheckLeft: it runs Check with a kill
// armed right after the held metadata root is reserved.
func TestHelperCheckKilledAfterReserve(t *testing.T) {
	root := os.Getenv(checkKilledEnv)
	if root == "" {
		t.Skip("helper process only")
	}
	p, err := Open(context.Background(), root, OpenOptions{})
	must(t, err)
	must(t, failpoint.Enable(failpoint.CheckAfterReserve+"=kill"))
	_, _ = p.Check(context.Background(), CheckOptions{})
	t.Fatal("Check returned; the failpoint should have killed the process")
}

func TestCheckReleasesTheHeldMetadataRootAKilledCheckLeft(t *testing.T) {
	testRequireThinDump(t)
	p, root := newVMPool(t, smallOptions())
	ctx := context.Background()
	must(t, p.Create(ctx, "a", "", CreateOptions{}))

	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperCheckKilledAfterReserve$")
	cmd.Env = append(os.Environ(), checkKilledEnv+"="+root)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the helper check was not killed: %v\n%s", err, out)
	}
	if h := heldRoot(t, p.cfg.PoolName); h == "-" {
		t.Fatal("the killed check left no metadata root held; the test proves nothing")
	}

	r, err := p.Check(ctx, CheckOptions{})
	must(t, err)
	if !r.Consistent {
		t.Fatalf("check after the killed one: %+v", r)
	}
	var released bool
	for _, n := range r.Notes {
		if strings.Contains(n, "not compared") {
			t.Fatalf("the check skipped the metadata comparison: %q", n)
		}
		released = released || strings.Contains(n, "released the held metadata root")
	}
	if !released {
		t.Fatalf("the check does not say it released the left-over metadata root: %q", r.Notes)
	}
	if h := heldRoot(t, p.cfg.PoolName); h != "-" {
		t.Fatalf("held metadata root %s still held after the check", h)
	}

	// An orphan is found by the full comparison: the check really compared.
	_, err = p.dm.Message(p.cfg.PoolName, 0, dm.ThinCreate(4242))
	must(t, err)
	r, err = p.Check(ctx, CheckOptions{Repair: true})
	must(t, err)
	if len(r.Problems) != 1 || r.Problems[0].Kind != ProblemOrphanThin || !r.Problems[0].Fixed {
		t.Fatalf("check with repair = %+v, want the orphan thin id 4242 found and deleted", r)
	}
}

// A held metadata root someone else reserved is left alone: the check says
// it could not compare, and the root stays held for its owner.
func TestCheckLeavesAnotherProgramsHeldMetadataRootAlone(t *testing.T) {
	testRequireThinDump(t)
	p, _ := newVMPool(t, smallOptions())
	mustDmsetup(t, "message", p.cfg.PoolName, "0", dm.ThinReserveMetadataSnap)
	defer mustDmsetup(t, "message", p.cfg.PoolName, "0", dm.ThinReleaseMetadataSnap)
	held := heldRoot(t, p.cfg.PoolName)
	r, err := p.Check(context.Background(), CheckOptions{Repair: true})
	must(t, err)
	if len(r.Notes) == 0 || !strings.Contains(strings.Join(r.Notes, "\n"), "another program holds") {
		t.Fatalf("check notes %q do not say another program holds the metadata root", r.Notes)
	}
	if h := heldRoot(t, p.cfg.PoolName); h != held {
		t.Fatalf("the other program's metadata root %s became %s", held, h)
	}
}

func testRequireThinDump(t *testing.T) {
	if _, err := exec.LookPath("thin_dump"); err != nil {
		t.Skip("thin_dump not installed")
	}
}

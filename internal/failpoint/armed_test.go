//go:build failpoints

package failpoint

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pkg/errors"
)

func TestInjectErrReturnsTheInjectedErrorOnlyWhereArmed(t *testing.T) {
	t.Cleanup(Disable)
	if err := Enable(MountAfterMount + "=error"); err != nil {
		t.Fatal(err)
	}
	if !Enabled() {
		t.Fatal("Enabled() = false after Enable")
	}
	err := InjectErr(MountAfterMount)
	if !errors.Is(err, ErrInjected) || !strings.Contains(err.Error(), MountAfterMount) {
		t.Fatalf("InjectErr(armed) = %v, want ErrInjected naming the point", err)
	}
	if err := InjectErr(TxAfterSave); err != nil {
		t.Fatalf("InjectErr(unarmed) = %v, want nil", err)
	}
	Inject(MountAfterMount) // the error action does nothing in Inject
	Disable()
	if Enabled() || InjectErr(MountAfterMount) != nil {
		t.Fatal("a point still fires after Disable")
	}
}

func TestAHitCountFiresOnlyOnThatHit(t *testing.T) {
	t.Cleanup(Disable)
	if err := Enable(TxAfterSave + "=error@2"); err != nil {
		t.Fatal(err)
	}
	var got []bool
	for range 4 {
		got = append(got, InjectErr(TxAfterSave) != nil)
	}
	if want := []bool{false, true, false, false}; !equalBools(got, want) {
		t.Fatalf("hits fired %v, want %v", got, want)
	}
}

func TestSleepDelaysAndReturns(t *testing.T) {
	t.Cleanup(Disable)
	if err := Enable(TxAfterSave + "=sleep:30ms"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := InjectErr(TxAfterSave); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Fatalf("sleep:30ms returned after %v", d)
	}
}

func TestPanicNamesThePoint(t *testing.T) {
	t.Cleanup(Disable)
	if err := Enable(TxAfterCommit + "=panic"); err != nil {
		t.Fatal(err)
	}
	defer func() {
		r := recover()
		if s, _ := r.(string); !strings.Contains(s, TxAfterCommit) {
			t.Fatalf("recovered %v, want a panic naming %s", r, TxAfterCommit)
		}
	}()
	Inject(TxAfterCommit)
	t.Fatal("Inject returned from an armed panic point")
}

func TestEnableWithABadSpecKeepsWhatWasArmed(t *testing.T) {
	t.Cleanup(Disable)
	if err := Enable(TxAfterSave + "=error"); err != nil {
		t.Fatal(err)
	}
	if err := Enable("nonsense"); err == nil {
		t.Fatal("Enable(nonsense) = nil")
	}
	if InjectErr(TxAfterSave) == nil {
		t.Fatal("a failed Enable disarmed the earlier spec")
	}
	if err := Enable(""); err != nil || Enabled() {
		t.Fatalf("Enable(\"\") = %v, Enabled() = %v; want nil, false", err, Enabled())
	}
}

func TestTheEnvironmentArmsPointsInANewProcess(t *testing.T) {
	runEnvCases(t, []envCase{
		{name: "kill ends the process with SIGKILL", point: TxAfterMessage, spec: TxAfterMessage + "=kill", signal: syscall.SIGKILL},
		{name: "an unarmed point lets the process run on", point: TxAfterSave, spec: TxAfterMessage + "=kill", stdout: "survived\n"},
		{name: "kill on a later hit lets the first hit pass", point: TxAfterSave, spec: TxAfterSave + "=kill@2", stdout: "survived\n"},
		{name: "panic ends the process with Go's panic status", point: TxAfterCommit, spec: TxAfterCommit + "=panic", exitCode: 2},
		{name: "a bad spec is reported and arms nothing", point: TxAfterSave, spec: "x=y", exitCode: 3},
	})
}

// A process-directed SIGSTOP let the thread at the point run on until the
// group stop reached it (in the VM a command sometimes finished first), so
// this is repeated: the process must never get past the point.
func TestStopFreezesTheProcessAtThePoint(t *testing.T) {
	for i := range 40 {
		cmd := helper(t, RemoveAfterMark, RemoveAfterMark+"=stop")
		var out strings.Builder
		cmd.Stdout = &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for !stopped(cmd.Process.Pid) {
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				t.Fatalf("run %d: the helper did not stop within 10 s (stdout %q)", i, out.String())
			}
			time.Sleep(time.Millisecond)
		}
		if out.Len() != 0 {
			cmd.Process.Kill()
			t.Fatalf("run %d: the helper ran past the point before stopping: %q", i, out.String())
		}
		if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err != nil || out.String() != "survived\n" {
			t.Fatalf("run %d: after SIGCONT: err %v, stdout %q", i, err, out.String())
		}
	}
}

// stopped reports whether pid is in the stopped state (T in /proc/pid/stat).
func stopped(pid int) bool {
	b, err := os.ReadFile("/proc/" + itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] == 'T'
}

func itoa(n int) string { return strconv.Itoa(n) }

func equalBools(a, b []bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

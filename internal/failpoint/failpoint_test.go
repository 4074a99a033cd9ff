package failpoint

import (
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pkg/errors"
)

// TestMain lets the test binary serve as a process that reaches a point:
// with FAILPOINT_TEST_HELPER=<point> it injects that point (armed from
// THINCTL_FAILPOINTS at init, like thinctl) and exits 0 if it survives.
func TestMain(m *testing.M) {
	if p := os.Getenv("FAILPOINT_TEST_HELPER"); p != "" {
		if err := EnvError(); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(3)
		}
		Inject(p)
		os.Stdout.WriteString("survived\n")
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		spec    string
		want    map[string]Action
		wantErr string
	}{
		{name: "an empty spec arms nothing", spec: "", want: map[string]Action{}},
		{name: "a kill entry arms one point", spec: TxAfterMessage + "=kill",
			want: map[string]Action{TxAfterMessage: {Kind: Kill}}},
		{name: "entries split on semicolons and commas with spaces ignored",
			spec: TxAfterSave + "=panic; " + TxAfterCommit + "=stop," + MountAfterMount + "=error",
			want: map[string]Action{TxAfterSave: {Kind: Panic}, TxAfterCommit: {Kind: Stop}, MountAfterMount: {Kind: Error}}},
		{name: "sleep takes a duration", spec: TxAfterSave + "=sleep:250ms",
			want: map[string]Action{TxAfterSave: {Kind: Sleep, Delay: 250 * time.Millisecond}}},
		{name: "a hit count fires on the nth hit", spec: RegistryBeforeRen + "=kill@3",
			want: map[string]Action{RegistryBeforeRen: {Kind: Kill, Nth: 3}}},
		{name: "an unknown point is refused", spec: "thinpool/nowhere=kill", wantErr: "unknown point"},
		{name: "an entry without an action is refused", spec: TxAfterSave, wantErr: "want <point>=<action>"},
		{name: "an unknown action is refused", spec: TxAfterSave + "=explode", wantErr: "unknown action"},
		{name: "sleep without a duration is refused", spec: TxAfterSave + "=sleep", wantErr: "sleep"},
		{name: "a negative sleep is refused", spec: TxAfterSave + "=sleep:-1s", wantErr: "sleep"},
		{name: "kill with an argument is refused", spec: TxAfterSave + "=kill:now", wantErr: "takes no argument"},
		{name: "a zero hit count is refused", spec: TxAfterSave + "=kill@0", wantErr: "hit count"},
		{name: "a garbage hit count is refused", spec: TxAfterSave + "=kill@x", wantErr: "hit count"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.spec)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse(%q) error = %v, want one containing %q", tt.spec, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.spec, err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("Parse(%q) = %v, want %v", tt.spec, got, tt.want)
			}
			for k, w := range tt.want {
				if got[k] != w {
					t.Errorf("Parse(%q)[%s] = %+v, want %+v", tt.spec, k, got[k], w)
				}
			}
		})
	}
}

func TestPointsHaveUniqueWellFormedNamesAndDescriptions(t *testing.T) {
	re := regexp.MustCompile(`^[a-z]+/[a-z_-]+/[a-z-]+$`)
	seen := map[string]bool{}
	for _, p := range Points {
		if !re.MatchString(p.Name) {
			t.Errorf("point %q is not <package>/<operation>/<step>", p.Name)
		}
		if seen[p.Name] {
			t.Errorf("point %q listed twice", p.Name)
		}
		seen[p.Name] = true
		if p.Where == "" {
			t.Errorf("point %q has no description", p.Name)
		}
		if !Known(p.Name) {
			t.Errorf("Known(%q) = false", p.Name)
		}
	}
	if Known("thinpool/none/here") {
		t.Error("Known accepted a name that is not listed")
	}
}

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

// helper runs this test binary as a process that reaches point with
// THINCTL_FAILPOINTS=spec.
func helper(t *testing.T, point, spec string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "FAILPOINT_TEST_HELPER="+point, Env+"="+spec)
	return cmd
}

func TestTheEnvironmentArmsPointsInANewProcess(t *testing.T) {
	tests := []struct {
		name     string
		point    string
		spec     string
		signal   syscall.Signal // 0: exits
		exitCode int
		stdout   string
	}{
		{name: "kill ends the process with SIGKILL", point: TxAfterMessage, spec: TxAfterMessage + "=kill", signal: syscall.SIGKILL},
		{name: "an unarmed point lets the process run on", point: TxAfterSave, spec: TxAfterMessage + "=kill", stdout: "survived\n"},
		{name: "kill on a later hit lets the first hit pass", point: TxAfterSave, spec: TxAfterSave + "=kill@2", stdout: "survived\n"},
		{name: "panic ends the process with Go's panic status", point: TxAfterCommit, spec: TxAfterCommit + "=panic", exitCode: 2},
		{name: "a bad spec is reported and arms nothing", point: TxAfterSave, spec: "x=y", exitCode: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := helper(t, tt.point, tt.spec).Output()
			var ee *exec.ExitError
			switch {
			case tt.signal != 0:
				if !errors.As(err, &ee) {
					t.Fatalf("err = %v, want death by %v", err, tt.signal)
				}
				ws := ee.Sys().(syscall.WaitStatus)
				if !ws.Signaled() || ws.Signal() != tt.signal {
					t.Fatalf("wait status %v, want death by %v", ws, tt.signal)
				}
			case tt.exitCode != 0:
				if !errors.As(err, &ee) || ee.ExitCode() != tt.exitCode {
					t.Fatalf("err = %v, want exit status %d", err, tt.exitCode)
				}
			default:
				if err != nil || string(out) != tt.stdout {
					t.Fatalf("err = %v, stdout %q; want success with %q", err, out, tt.stdout)
				}
			}
		})
	}
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

func BenchmarkInjectDisarmed(b *testing.B) {
	Disable()
	for b.Loop() {
		Inject(TxAfterMessage)
	}
}

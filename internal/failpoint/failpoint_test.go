package failpoint

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pkg/errors"
)

// TestMain lets the test binary serve as a process that reaches a point:
// with FAILPOINT_TEST_HELPER=<point> it injects that point (armed from
// THINCTL_FAILPOINTS at init, like thinctl, when built with the failpoints
// tag) and exits 0 if it survives.
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
	re := regexp.MustCompile(`^[a-z][a-z0-9]*/[a-z_-]+/[a-z-]+$`)
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

// helper runs this test binary as a process that reaches point with
// THINCTL_FAILPOINTS=spec.
func helper(t *testing.T, point, spec string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "FAILPOINT_TEST_HELPER="+point, Env+"="+spec)
	return cmd
}

// envCase is one run of the helper process: the point it reaches, the
// THINCTL_FAILPOINTS it starts with, and how it must end.
type envCase struct {
	name     string
	point    string
	spec     string
	signal   syscall.Signal // 0: exits
	exitCode int
	stdout   string
}

// runEnvCases runs the helper process for each case and checks its end.
func runEnvCases(t *testing.T, tests []envCase) {
	t.Helper()
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

func BenchmarkInjectDisarmed(b *testing.B) {
	Disable()
	for b.Loop() {
		Inject(TxAfterMessage)
	}
}

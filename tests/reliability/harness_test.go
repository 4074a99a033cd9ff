package reliability

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/thinctl/thinctl/internal/failpoint"
)

// thinctlCmd is how the suite starts thinctl: a binary and the extra
// environment it needs.
type thinctlCmd struct {
	exe string
	env []string
	why string // where it was found, for skip messages
}

var (
	thinctlOnce sync.Once
	thinctlBin  thinctlCmd
	thinctlErr  string
	buildDir    string
)

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// findThinctl locates thinctl: $THINCTL_BIN, thinctl on PATH, the
// cmd/thinctl test binary the VM rig built beside this one (it acts as
// thinctl with THINCTL_TEST_MAIN=1), or, on a host with a Go toolchain
// and without -short, a fresh `go build` of ./cmd/thinctl — with the
// failpoints tag when this test binary has it (make test-native), so the
// crash tests can arm their points.
func findThinctl(t testing.TB) thinctlCmd {
	t.Helper()
	thinctlOnce.Do(func() {
		if p := os.Getenv("THINCTL_BIN"); p != "" {
			thinctlBin = thinctlCmd{exe: p, why: "$THINCTL_BIN"}
			return
		}
		if p, err := exec.LookPath("thinctl"); err == nil {
			thinctlBin = thinctlCmd{exe: p, why: "PATH"}
			return
		}
		if ms, _ := filepath.Glob("/tests/cmd_thinctl/*.test"); len(ms) == 1 {
			thinctlBin = thinctlCmd{exe: ms[0], env: []string{"THINCTL_TEST_MAIN=1"}, why: "the cmd/thinctl test binary"}
			return
		}
		if testing.Short() || os.Getenv("THINCTL_VM") == "1" {
			thinctlErr = "no thinctl binary: set THINCTL_BIN, put thinctl on PATH (tests/vm/run.sh --extra-bin bin/thinctl) or build cmd/thinctl's tests beside this one (--pkg ./cmd/thinctl)"
			return
		}
		goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
		dir, err := os.MkdirTemp("", "reliability-thinctl-")
		if err != nil {
			thinctlErr = err.Error()
			return
		}
		buildDir = dir
		exe := filepath.Join(dir, "thinctl")
		args := []string{"build", "-o", exe}
		if failpoint.Compiled {
			args = append(args, "-tags", "failpoints")
		}
		cmd := exec.Command(goTool, append(args, "github.com/thinctl/thinctl/cmd/thinctl")...)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			thinctlErr = strings.Join(args, " ") + " ./cmd/thinctl: " + err.Error() + "\n" + string(out)
			return
		}
		thinctlBin = thinctlCmd{exe: exe, why: "go build"}
	})
	if thinctlErr != "" {
		t.Skip(thinctlErr)
	}
	return thinctlBin
}

// result is one finished thinctl process.
type result struct {
	args           []string
	code           int            // exit status; -1 when killed by a signal
	signal         syscall.Signal // the signal that ended it, or 0
	stdout, stderr string
	took           time.Duration
}

func (r result) String() string {
	s := "thinctl " + strings.Join(r.args, " ")
	if r.signal != 0 {
		s += " (killed by " + r.signal.String() + ")"
	} else {
		s += " (exit " + itoa(r.code) + ")"
	}
	return s + "\nstdout:\n" + r.stdout + "\nstderr:\n" + r.stderr
}

// rig runs thinctl on one root.
type rig struct {
	t    testing.TB
	tc   thinctlCmd
	root string
	env  []string // extra environment for every command
	key  string   // the pool's device-mapper key, once known
}

func newRig(t testing.TB, root string) *rig {
	return &rig{t: t, tc: findThinctl(t), root: root}
}

// command builds a thinctl process with extra environment entries.
func (r *rig) command(env []string, args ...string) *exec.Cmd {
	cmd := exec.Command(r.tc.exe, args...)
	cmd.Env = append(append(append(os.Environ(), r.tc.env...), "THINCTL_ROOT="+r.root), r.env...)
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

// wait finishes cmd and describes how it ended.
func finish(cmd *exec.Cmd, args []string, out, errb *bytes.Buffer, start time.Time) result {
	err := cmd.Wait()
	res := result{args: args, stdout: out.String(), stderr: errb.String(), took: time.Since(start)}
	if err == nil {
		return res
	}
	if ee, ok := err.(*exec.ExitError); ok {
		ws := ee.Sys().(syscall.WaitStatus)
		if ws.Signaled() {
			res.code, res.signal = -1, ws.Signal()
		} else {
			res.code = ws.ExitStatus()
		}
		return res
	}
	res.code = -1
	res.stderr += "\n(wait: " + err.Error() + ")"
	return res
}

// runEnv runs one thinctl command with extra environment entries.
func (r *rig) runEnv(env []string, args ...string) result {
	r.t.Helper()
	cmd := r.command(env, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	if err := cmd.Start(); err != nil {
		r.t.Fatalf("start thinctl %s: %v", strings.Join(args, " "), err)
	}
	return finish(cmd, args, &out, &errb, start)
}

func (r *rig) run(args ...string) result { r.t.Helper(); return r.runEnv(nil, args...) }

// must runs a command that has to succeed and returns its stdout.
func (r *rig) must(args ...string) string {
	r.t.Helper()
	res := r.run(args...)
	if res.code != 0 {
		r.t.Fatalf("%s", res)
	}
	return res.stdout
}

// decode runs a -o json command that has to succeed and decodes its output.
func (r *rig) decode(v any, args ...string) {
	r.t.Helper()
	out := r.must(append([]string{"-o", "json"}, args...)...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		r.t.Fatalf("thinctl -o json %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// device is one entry of `thinctl -o json list`.
type device struct {
	ID        string `json:"id"`
	Parent    string `json:"parent"`
	DeviceID  uint32 `json:"device_id"`
	SizeBytes uint64 `json:"size_bytes"`
	Active    bool   `json:"active"`
	Mounted   bool   `json:"mounted"`
	MountPath string `json:"mount_path"`
	Deleted   bool   `json:"deleted"`
}

func (r *rig) list() []device {
	r.t.Helper()
	var ds []device
	r.decode(&ds, "list")
	return ds
}

// checkReport is `thinctl -o json check`.
type checkReport struct {
	Consistent bool `json:"consistent"`
	Problems   []struct {
		Kind   string `json:"kind"`
		ID     string `json:"id"`
		Detail string `json:"detail"`
	} `json:"problems"`
}

// check runs `thinctl -o json check` and returns its report and result.
func (r *rig) check() (checkReport, result) {
	r.t.Helper()
	res := r.run("-o", "json", "check")
	var rep checkReport
	if err := json.Unmarshal([]byte(res.stdout), &rep); err != nil {
		r.t.Fatalf("check output is not JSON: %v\n%s", err, res)
	}
	return rep, res
}

// treeDigest maps every regular file and directory under dir to its mode
// and, for files smaller than maxBytes, a hash of its bytes (larger files:
// their size), so "nothing changed" can be asserted byte for byte.
func treeDigest(t testing.TB, dir string, maxBytes int64) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		info, err := d.Info()
		if err != nil {
			return nil
		}
		desc := info.Mode().String()
		if info.Mode().IsRegular() {
			if info.Size() < maxBytes {
				b, err := os.ReadFile(path)
				if err != nil {
					return err
				}
				sum := sha256.Sum256(b)
				desc += " sha256:" + hex.EncodeToString(sum[:8])
			} else {
				desc += " size:" + itoa(int(info.Size()))
			}
		}
		out[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatalf("digest %s: %v", dir, err)
	}
	return out
}

// diffDigest describes the differences of two treeDigest results.
func diffDigest(before, after map[string]string) string {
	var d []string
	for k, v := range before {
		if w, ok := after[k]; !ok {
			d = append(d, "removed "+k)
		} else if w != v {
			d = append(d, "changed "+k+": "+v+" -> "+w)
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			d = append(d, "added "+k)
		}
	}
	sort.Strings(d)
	return strings.Join(d, "\n")
}

func itoa(n int) string { return strconv.Itoa(n) }

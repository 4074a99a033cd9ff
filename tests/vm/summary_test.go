//go:build !vm

package vm

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// sh runs a snippet with the guest's lib.sh sourced, under the host's sh.
func sh(t *testing.T, script string, args ...string) string {
	t.Helper()
	shell, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh on the host")
	}
	lib, err := filepath.Abs(filepath.Join("guest", "lib.sh"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(shell, append([]string{"-c", ". " + lib + "; " + script, "sh"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sh: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}

const transcript = `=== RUN   TestA
--- PASS: TestA (0.01s)
=== RUN   TestB
=== RUN   TestB/sub
    --- PASS: TestB/sub (0.00s)
    --- FAIL: TestB/other (0.00s)
--- FAIL: TestB (0.00s)
=== RUN   TestC
    c_test.go:9: needs root
--- SKIP: TestC (0.00s)
--- PASS: TestD (1.50s)
FAIL
`

func TestCountResultsCountsOnlyTopLevelTests(t *testing.T) {
	tests := []struct {
		name, log, want string
	}{
		{"a mixed transcript counts two passes, one failure and one skip", transcript, "2 1 1"},
		{"an empty transcript counts nothing", "", "0 0 0"},
		{"a binary that panicked before any test counts nothing", "panic: boom\n", "0 0 0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "log")
			if err := os.WriteFile(f, []byte(tc.log), 0o644); err != nil {
				t.Fatal(err)
			}
			if got := sh(t, `count_results "$1"`, f); got != tc.want {
				t.Errorf("count_results = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestBinaryFailuresCountsASilentCrashAsOneFailure(t *testing.T) {
	tests := []struct {
		name, log, rc, want string
	}{
		{"a clean exit adds nothing", "--- PASS: TestA (0.00s)\n", "0", "0"},
		{"a failing test already counted adds nothing", transcript, "1", "0"},
		{"a timeout panic with no FAIL line adds one", "--- PASS: TestA (0.00s)\npanic: test timed out after 1m0s\n", "2", "1"},
		{"a binary that ran nothing and exited non-zero adds one", "flag provided but not defined\n", "2", "1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "log")
			if err := os.WriteFile(f, []byte(tc.log), 0o644); err != nil {
				t.Fatal(err)
			}
			if got := sh(t, `binary_failures "$1" "$2"`, f, tc.rc); got != tc.want {
				t.Errorf("binary_failures(rc %s) = %q, want %q", tc.rc, got, tc.want)
			}
		})
	}
}

func TestSummaryLineHasTheShapeMakeTestPrints(t *testing.T) {
	got := sh(t, `summary_line udev 6.1.0-28-amd64 3 1 2`)
	want := "VM (udev, kernel 6.1.0-28-amd64): 3 tests passed, 1 failed, 2 skipped"
	if got != want {
		t.Errorf("summary_line = %q, want %q", got, want)
	}
}

func TestFailedTestsNamesEachFailureWithItsBinary(t *testing.T) {
	console := "=== RUN binary thinpool.test ===\n" + transcript +
		"=== binary thinpool.test exited 1 ===\n" +
		"=== RUN binary driver.test ===\n--- PASS: TestE (0.00s)\n" +
		"=== RUN binary dm.test ===\n--- PASS: TestF (0.00s)\npanic: test timed out after 14m0s\n" +
		"=== binary dm.test exited 2 ===\n"
	tests := []struct {
		name, log, want string
	}{
		{"a failing test and a silent crash are both named", console, "thinpool.test:TestB, dm.test (exit 2)"},
		{"a clean run names nothing", "=== RUN binary driver.test ===\n--- PASS: TestE (0.00s)\n", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "log")
			if err := os.WriteFile(f, []byte(tc.log), 0o644); err != nil {
				t.Fatal(err)
			}
			if got := sh(t, `failed_tests "$1"`, f); got != tc.want {
				t.Errorf("failed_tests = %q, want %q", got, tc.want)
			}
		})
	}
}

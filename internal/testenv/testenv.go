// Package testenv holds helpers shared by the integration tests that run in
// the VM rig (build tag vm) and natively with make test-native.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// RequireRoot skips t unless the test runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

// RequireDeviceMapper skips t unless the kernel has device-mapper
// (/dev/mapper/control or the misc device in /proc/misc).
func RequireDeviceMapper(t testing.TB) {
	t.Helper()
	RequireRoot(t)
	if _, err := os.Stat("/dev/mapper/control"); err == nil {
		return
	}
	b, _ := os.ReadFile("/proc/misc")
	if !containsWord(string(b), "device-mapper") {
		t.Skip("kernel has no device-mapper")
	}
}

// RequireTool skips t when the named program is not on PATH and returns its path.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed", name)
	}
	return p
}

// SparseFile creates a sparse file of size bytes in a fresh temp dir.
func SparseFile(t testing.TB, name string, size int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return p
}

func containsWord(s, w string) bool {
	for i := 0; i+len(w) <= len(s); i++ {
		if s[i:i+len(w)] == w && (i+len(w) == len(s) || s[i+len(w)] == '\n' || s[i+len(w)] == ' ') {
			return true
		}
	}
	return false
}

// SettleUdev waits for udev (when it runs) to finish the events queued so
// far: its workers open new and changed devices briefly to probe them, and
// a test that compares a device's open count or counts its holders must
// not see them.
func SettleUdev(t testing.TB) {
	t.Helper()
	if _, err := os.Stat("/run/udev/control"); err != nil {
		return
	}
	if out, err := exec.Command("udevadm", "settle", "--timeout=30").CombinedOutput(); err != nil {
		t.Logf("udevadm settle: %v: %s", err, out)
	}
}

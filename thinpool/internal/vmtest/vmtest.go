// Package vmtest holds the helpers thinpool's VM tests and those of the
// packages beside it (thinpool/watch) share: dmsetup and thin_check as
// independent oracles, loop devices thinctl did not bind, and seeded data
// written to and hashed from block devices with O_DIRECT. They need root
// and the VM rig's tools; nothing outside tests imports this package.
package vmtest

import (
	"crypto/sha256"
	"math/rand"
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/internal/testenv"
)

// Must fails the test at once on a non-nil err.
func Must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// Dmsetup runs dmsetup as an independent oracle and returns its trimmed
// output.
func Dmsetup(t testing.TB, args ...string) (string, error) {
	t.Helper()
	tool := testenv.RequireTool(t, "dmsetup")
	out, err := exec.Command(tool, args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// MustDmsetup is Dmsetup that fails the test when dmsetup fails.
func MustDmsetup(t testing.TB, args ...string) string {
	t.Helper()
	out, err := Dmsetup(t, args...)
	if err != nil {
		t.Fatalf("dmsetup %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return out
}

// ThinCheck runs thin_check on a metadata file of a pool that is down
// (and only logs when thin_check is not installed).
func ThinCheck(t testing.TB, meta string) {
	t.Helper()
	tool, err := exec.LookPath("thin_check")
	if err != nil {
		t.Log("thin_check not installed; metadata not checked")
		return
	}
	out, err := exec.Command(tool, meta).CombinedOutput()
	if err != nil {
		t.Errorf("thin_check %s: %v\n%s", meta, err, out)
	}
}

// RawDevices makes a 1 GiB data and a 64 MiB metadata file and binds them
// to loop devices with losetup (not thinctl's loopback package: to thinctl
// they are someone else's block devices). They are detached when the test
// ends.
func RawDevices(t testing.TB) (data, meta, dataDev, metaDev string) {
	t.Helper()
	losetup := testenv.RequireTool(t, "losetup")
	data = testenv.SparseFile(t, "data", 1<<30)
	meta = testenv.SparseFile(t, "meta", 64<<20)
	attach := func(f string) string {
		out, err := exec.Command(losetup, "-f", "--show", f).CombinedOutput()
		if err != nil {
			t.Fatalf("losetup %s: %v %s", f, err, out)
		}
		dev := strings.TrimSpace(string(out))
		t.Cleanup(func() { exec.Command(losetup, "-d", dev).Run() })
		return dev
	}
	return data, meta, attach(data), attach(meta)
}

// WriteSeeded writes n bytes of seeded pseudo-random data at offset off of
// the block device at path with O_DIRECT, 1 MiB at a time, and returns the
// data's hash and the first error.
func WriteSeeded(path string, off, n int64, seed int64) ([32]byte, error) {
	h := sha256.New()
	f, err := os.OpenFile(path, os.O_WRONLY|unix.O_DIRECT, 0)
	if err != nil {
		return [32]byte{}, err
	}
	defer f.Close()
	buf, err := unix.Mmap(-1, 0, 1<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return [32]byte{}, err
	}
	defer unix.Munmap(buf)
	r := rand.New(rand.NewSource(seed))
	for done := int64(0); done < n; done += 1 << 20 {
		r.Read(buf)
		if _, err := f.WriteAt(buf, off+done); err != nil {
			return [32]byte{}, err
		}
		h.Write(buf)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum, f.Sync()
}

// HashDevice hashes n bytes at off of the device at path.
func HashDevice(t testing.TB, path string, off, n int64) [32]byte {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_DIRECT, 0)
	Must(t, err)
	defer f.Close()
	buf, err := unix.Mmap(-1, 0, 1<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	Must(t, err)
	defer unix.Munmap(buf)
	h := sha256.New()
	for done := int64(0); done < n; done += 1 << 20 {
		_, err := f.ReadAt(buf, off+done)
		Must(t, err)
		h.Write(buf)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum
}

package main

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/dm"
)

// detectEnv describes the machine; emulation is what the caller knows
// (the VM script passes "qemu TCG ..."); otherwise it is guessed.
func detectEnv(emulation, scratch string) Env {
	e := Env{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), Started: time.Now().UTC().Format(time.RFC3339)}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		e.Kernel = unix.ByteSliceToString(u.Release[:]) + " " + unix.ByteSliceToString(u.Machine[:])
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				e.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if kb, err := meminfo("MemTotal"); err == nil {
		e.MemTotalMB = int(kb / 1024)
	}
	e.Emulation = emulation
	if e.Emulation == "" {
		vendor, _ := os.ReadFile("/sys/class/dmi/id/sys_vendor")
		switch {
		case strings.Contains(e.CPUModel, "TCG"):
			e.Emulation = "qemu TCG (software emulation)"
		case strings.Contains(string(vendor), "QEMU"):
			e.Emulation = "qemu guest (accelerated or unknown)"
		default:
			e.Emulation = "native (not detected as emulated)"
		}
	}
	if c, err := dm.Default(); err == nil {
		e.DMVersion = c.KernelVersion().String()
	}
	if out, err := exec.Command("dmsetup", "--version").CombinedOutput(); err == nil {
		e.Dmsetup = strings.Join(strings.Fields(string(out)), " ")
	}
	var st unix.Statfs_t
	if unix.Statfs(scratch, &st) == nil {
		e.ScratchFS = fsTypeName(st.Type)
	}
	_, err := os.Stat("/run/udev/control")
	e.Udev = err == nil
	return e
}

func fsTypeName(t int64) string {
	switch t {
	case unix.EXT4_SUPER_MAGIC:
		return "ext4"
	case unix.XFS_SUPER_MAGIC:
		return "xfs"
	case unix.TMPFS_MAGIC:
		return "tmpfs"
	case unix.BTRFS_SUPER_MAGIC:
		return "btrfs"
	}
	return "0x" + strconv.FormatInt(t, 16)
}

// meminfo returns one /proc/meminfo field in KiB.
func meminfo(field string) (int64, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	return parseMeminfo(b, field)
}

// parseMeminfo finds "field: N kB" in /proc/meminfo text.
func parseMeminfo(b []byte, field string) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != field {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			break
		}
		return strconv.ParseInt(f[0], 10, 64)
	}
	return 0, errors.Errorf("/proc/meminfo has no %s", field)
}

// cachedBytes is the page cache size (Cached) in bytes.
func cachedBytes() (int64, error) {
	kb, err := meminfo("Cached")
	return kb * 1024, err
}

// dropCaches writes back dirty data and empties the page cache.
func dropCaches() error {
	unix.Sync()
	return os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0)
}

// diskWrittenBytes is the bytes written so far to the block device that
// holds path (sectors written from /sys/dev/block/M:m/stat, times 512).
func diskWrittenBytes(path string) (int64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, errors.Wrapf(err, "stat %s", path)
	}
	p := "/sys/dev/block/" + strconv.Itoa(int(unix.Major(st.Dev))) + ":" + strconv.Itoa(int(unix.Minor(st.Dev))) + "/stat"
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, errors.Wrapf(err, "disk stats of %s", path)
	}
	f := strings.Fields(string(b))
	if len(f) < 7 {
		return 0, errors.Errorf("%s: %d fields, want at least 7", p, len(f))
	}
	n, err := strconv.ParseInt(f[6], 10, 64)
	return n * 512, err
}

// allocatedBytes is the space a file takes on disk (st_blocks * 512), or
// of every file under a directory.
func allocatedBytes(path string) (int64, error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return 0, errors.Wrapf(err, "stat %s", path)
	}
	total := st.Blocks * 512
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return total, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return 0, errors.Wrapf(err, "read %s", path)
	}
	for _, e := range entries {
		n, err := allocatedBytes(path + "/" + e.Name())
		if err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}

// residentBytes is how much of file sits in the page cache (mincore).
func residentBytes(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() == 0 {
		return 0, err
	}
	m, err := unix.Mmap(int(f.Fd()), 0, int(fi.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return 0, errors.Wrapf(err, "mmap %s", path)
	}
	defer unix.Munmap(m)
	page := int64(os.Getpagesize())
	vec := make([]byte, (fi.Size()+page-1)/page)
	if _, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		return 0, errors.Wrapf(e, "mincore %s", path)
	}
	var n int64
	for _, v := range vec {
		if v&1 != 0 {
			n += page
		}
	}
	return n, nil
}

// writePattern writes size bytes of a non-zero pattern to path and fsyncs.
func writePattern(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i*7 + 1)
	}
	for off := int64(0); off < size; off += int64(len(buf)) {
		n := min(int64(len(buf)), size-off)
		if _, err := f.Write(buf[:n]); err != nil {
			f.Close()
			return errors.Wrapf(err, "write %s", path)
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return errors.Wrapf(err, "fsync %s", path)
	}
	return f.Close()
}

// readAll reads path to the end and returns the bytes read.
func readAll(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return io.Copy(io.Discard, f)
}

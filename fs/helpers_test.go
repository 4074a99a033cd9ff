package fs

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/internal/testenv"
)

// These helpers attach loop devices with raw ioctls so that the tests depend
// neither on the loopback package nor on a particular losetup (the VM guest
// only has busybox's).

// testLoop is a loop device attached for one test.
type testLoop struct {
	Path string
	Dev  uint64 // device number
	fd   int
}

// requireLoop skips t unless loop devices can be attached here.
func requireLoop(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to attach loop devices")
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		t.Skip("no /dev/loop-control")
	}
}

// attachLoop binds file to a free loop device and detaches it at cleanup.
func attachLoop(t testing.TB, file string) *testLoop {
	t.Helper()
	requireLoop(t)
	ctl, err := unix.Open("/dev/loop-control", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open loop-control: %v", err)
	}
	defer unix.Close(ctl)
	ffd, err := unix.Open(file, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open backing file: %v", err)
	}
	defer unix.Close(ffd)
	for try := 0; try < 50; try++ {
		n, err := unix.IoctlRetInt(ctl, unix.LOOP_CTL_GET_FREE)
		if err != nil {
			t.Fatalf("LOOP_CTL_GET_FREE: %v", err)
		}
		path := "/dev/loop" + strconv.Itoa(n)
		if _, err := os.Stat(path); os.IsNotExist(err) {
			_ = unix.Mknod(path, unix.S_IFBLK|0o660, int(unix.Mkdev(7, uint32(n))))
		}
		lfd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if err := unix.IoctlSetInt(lfd, unix.LOOP_SET_FD, ffd); err != nil {
			unix.Close(lfd)
			if err == unix.EBUSY {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			t.Fatalf("LOOP_SET_FD %s: %v", path, err)
		}
		info := unix.LoopInfo64{Flags: unix.LO_FLAGS_AUTOCLEAR}
		copy(info.File_name[:], file)
		_ = unix.IoctlLoopSetStatus64(lfd, &info)
		l := &testLoop{Path: path, Dev: unix.Mkdev(7, uint32(n)), fd: lfd}
		testenv.SettleUdev(t)
		t.Cleanup(func() {
			_ = unix.IoctlSetInt(l.fd, unix.LOOP_CLR_FD, 0)
			unix.Close(l.fd)
		})
		return l
	}
	t.Fatal("no free loop device after 50 tries")
	return nil
}

// refreshCapacity tells the loop device its backing file changed size.
func (l *testLoop) refreshCapacity(t testing.TB) {
	t.Helper()
	if err := unix.IoctlSetInt(l.fd, unix.LOOP_SET_CAPACITY, 0); err != nil {
		t.Fatalf("LOOP_SET_CAPACITY: %v", err)
	}
}

// sparseFile creates a sparse file of size bytes in a fresh temp dir.
func sparseFile(t testing.TB, name string, size int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, size); err != nil {
		t.Fatal(err)
	}
	return p
}

// requireTools skips t unless every named program can be found.
func requireTools(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := lookTool(n); err != nil {
			t.Skipf("%s not installed", n)
		}
	}
}

// mkfsMin is the smallest size the tests give each filesystem type
// (mkfs.xfs refuses filesystems under 300 MiB).
var mkfsMin = map[Type]int64{Ext4: 64 << 20, XFS: 320 << 20}

// mkfsTools lists the programs a test of each type needs.
var mkfsTools = map[Type]string{Ext4: "mkfs.ext4", XFS: "mkfs.xfs"}

// imageFile makes a sparse file of the type's minimum size formatted with t.
func imageFile(t testing.TB, typ Type) string {
	t.Helper()
	requireTools(t, mkfsTools[typ])
	p := sparseFile(t, string(typ)+".img", mkfsMin[typ])
	if err := Mkfs(context.Background(), p, typ, MkfsOptions{}); err != nil {
		t.Fatalf("Mkfs: %v", err)
	}
	return p
}

// blkidUUID asks blkid for the UUID of dev: an oracle independent of Probe.
func blkidUUID(t testing.TB, dev string) string {
	t.Helper()
	p, err := exec.LookPath("blkid")
	if err != nil {
		t.Skip("blkid not installed")
	}
	out, err := exec.Command(p, "-p", "-s", "UUID", "-o", "value", dev).Output()
	if err != nil {
		t.Fatalf("blkid %s: %v", dev, err)
	}
	return strings.TrimSpace(string(out))
}

// mountedFS makes a filesystem of type typ on a loop device, mounts it and
// unmounts it (lazily) at cleanup.
func mountedFS(t testing.TB, typ Type) (*testLoop, string) {
	t.Helper()
	img := imageFile(t, typ)
	l := attachLoop(t, img)
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := Mount(l.Path, mnt, typ, MountOptions{}); err != nil {
		t.Fatalf("Mount: %v", err)
	}
	t.Cleanup(func() { _ = Unmount(mnt, UnmountOptions{Lazy: true, RemoveDir: true}) })
	return l, mnt
}

// startProcess starts cmd in a process group of its own and kills that
// group (cmd and any children it forked) and reaps cmd at cleanup.
func startProcess(t testing.TB, cmd *exec.Cmd) {
	t.Helper()
	cmd.SysProcAttr = &unix.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", cmd.Args, err)
	}
	t.Cleanup(func() {
		_ = unix.Kill(-cmd.Process.Pid, unix.SIGKILL)
		_ = cmd.Wait()
	})
}

// copySparse copies file to a new temp file, copying only its data
// regions (found with SEEK_DATA/SEEK_HOLE) so that holes stay holes.
func copySparse(t testing.TB, file string) string {
	t.Helper()
	src, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	st, err := src.Stat()
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "copy-"+filepath.Base(file))
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	for off := int64(0); off < st.Size(); {
		data, err := src.Seek(off, unix.SEEK_DATA)
		if err != nil { // ENXIO: no data after off
			break
		}
		hole, err := src.Seek(data, unix.SEEK_HOLE)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := src.Seek(data, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		if _, err := out.Seek(data, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		if _, err := io.CopyN(out, src, hole-data); err != nil {
			t.Fatal(err)
		}
		off = hole
	}
	if err := out.Truncate(st.Size()); err != nil {
		t.Fatal(err)
	}
	return dst
}

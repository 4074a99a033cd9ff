//go:build vm

package reliability

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/internal/failpoint"
)

// stateDisk is a small ext4 filesystem on a loop device that holds a
// thinctl root, so a test can cut its power: copy what has reached the
// disk, throw the running system away and boot the copy.
type stateDisk struct {
	t    *testing.T
	img  string // the backing file: the "disk"
	mnt  string // where the filesystem is mounted
	loop string
}

func newStateDisk(t *testing.T) *stateDisk {
	t.Helper()
	dir := t.TempDir()
	s := &stateDisk{t: t, img: filepath.Join(dir, "disk.img"), mnt: filepath.Join(dir, "mnt")}
	f, err := os.Create(s.img)
	if err == nil {
		err = f.Truncate(2 << 30)
		f.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	mustRun(t, "mkfs.ext4", "-q", "-F", "-E", "nodiscard,lazy_itable_init=1,lazy_journal_init=1", s.img)
	if err := os.Mkdir(s.mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	s.attach()
	t.Cleanup(func() {
		unmountUnder(s.mnt)
		exec.Command("umount", s.mnt).Run()
		if s.loop != "" {
			exec.Command("losetup", "-d", s.loop).Run()
		}
	})
	return s
}

func (s *stateDisk) attach() {
	out := mustRun(s.t, "losetup", "--show", "-f", s.img)
	s.loop = strings.TrimSpace(out)
	mustRun(s.t, "mount", "-t", "ext4", s.loop, s.mnt)
}

// cut simulates a power cut while the process pid is frozen at a
// failpoint and a reboot: the disk image as it is now (everything the
// state filesystem has written to its block device; nothing still in its
// page cache) becomes the disk; the process is killed; every mount,
// device-mapper device and loop device of the old system is torn down as
// a reboot would; e2fsck replays the journal; the copy is mounted where
// the filesystem was. key is the root's device-mapper key ("" for a root
// without a thin pool).
func (s *stateDisk) cut(pid int, key string, afterCopy func()) {
	t := s.t
	t.Helper()
	cutImg := s.img + ".cut"
	if err := copySparse(s.img, cutImg); err != nil {
		t.Fatalf("copy the disk image: %v", err)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	if afterCopy != nil {
		afterCopy()
	}
	// The reboot: nothing of the old kernel state survives. (A root of a
	// file-level driver has no device-mapper key and no devices.)
	if key != "" {
		resumeAll(key)
	}
	unmountUnder(s.mnt)
	if key != "" {
		removeAllDM(key)
	}
	detachLoopsUnder(s.mnt)
	if out, err := exec.Command("umount", s.mnt).CombinedOutput(); err != nil {
		t.Fatalf("umount %s: %v\n%s", s.mnt, err, out)
	}
	mustRun(t, "losetup", "-d", s.loop)
	s.loop = ""
	if err := os.Rename(cutImg, s.img); err != nil {
		t.Fatal(err)
	}
	// e2fsck: 0 clean, 1 errors corrected; anything else is a failure.
	out, err := exec.Command("e2fsck", "-f", "-y", s.img).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); err != nil && (!ok || ee.ExitCode() > 1) {
		t.Fatalf("e2fsck after the power cut: %v\n%s", err, out)
	}
	s.attach()
}

// unmountUnder lazily unmounts every mount below dir, deepest first.
func unmountUnder(dir string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return
	}
	defer f.Close()
	var mps []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) > 4 && strings.HasPrefix(fl[4], dir+"/") {
			mps = append(mps, fl[4])
		}
	}
	sort.Slice(mps, func(i, j int) bool { return len(mps[i]) > len(mps[j]) })
	for _, mp := range mps {
		exec.Command("umount", "-l", mp).Run()
	}
}

// copySparse copies src to dst, skipping holes (SEEK_DATA/SEEK_HOLE).
func copySparse(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer out.Close()
	if err := out.Truncate(st.Size()); err != nil {
		return err
	}
	fd := int(in.Fd())
	var off int64
	for off < st.Size() {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if err != nil {
			break // ENXIO: no data after off
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return err
		}
		if _, err := io.Copy(io.NewOffsetWriter(out, data), io.NewSectionReader(in, data, hole-data)); err != nil {
			return err
		}
		off = hole
	}
	return out.Sync()
}

func mustRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// waitStopped waits until pid is stopped (it reached a stop failpoint) or
// has exited (it did not); it reports which.
func waitStopped(cmd *exec.Cmd, done <-chan struct{}) bool {
	for {
		select {
		case <-done:
			return false
		case <-time.After(20 * time.Millisecond):
		}
		b, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i > 0 && i+2 < len(s) && s[i+2] == 'T' {
			return true
		}
	}
}

// freezeAt starts step c's command on r with its failpoint armed to stop
// and waits until thinctl is frozen there; done is closed when the process
// ends. The error says what happened when the command finished without
// reaching the point.
func freezeAt(t *testing.T, r *rig, c crashStep) (cmd *exec.Cmd, done <-chan struct{}, err error) {
	t.Helper()
	cmd = r.command([]string{failpoint.Env + "=" + c.spec("stop")}, c.args(r)...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	if !waitStopped(cmd, exited) {
		return nil, nil, fmt.Errorf("thinctl %v finished:\n%s", c.args(r), out.String())
	}
	return cmd, exited, nil
}

// requirePowerCut skips t unless a power cut of a state disk can run here:
// in the VM rig's boot without udev (what reaches the disk does not depend
// on udev; THINCTL_RELIABILITY_FULL=1 runs it in the other boot too), with
// the tools stateDisk uses.
func requirePowerCut(t *testing.T) {
	t.Helper()
	requireVM(t)
	findThinctl(t)
	if udevMode && !full {
		t.Skip("the power-cut tests run in the boot without udev (what reaches the disk does not depend on udev); THINCTL_RELIABILITY_FULL=1 runs them here too")
	}
	for _, tool := range []string{"losetup", "mkfs.ext4", "e2fsck"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s", tool)
		}
	}
}

// TestReliabilityPowerCut freezes thinctl at failpoints, cuts the power
// of the filesystem holding the root (see stateDisk.cut), boots the copy
// and checks the same conditions as the crash test.
func TestReliabilityPowerCut(t *testing.T) {
	requirePowerCut(t)
	disk := newStateDisk(t)
	root := filepath.Join(disk.mnt, "root")
	if err := os.Mkdir(root, 0o700); err != nil {
		t.Fatal(err)
	}
	r := newPoolRig(t, root)
	requireFailpoints(t, r)
	w := makeWorld(t, r)
	keep := func(c crashStep) bool { return !c.fresh && selected(c.cut, false) }
	runCrashMatrix(t, "power cut", "stop", r, w, keep, func(t *testing.T, target *rig, c crashStep) (bool, string) {
		cfg, err := readPoolJSON(target.root)
		if err != nil {
			t.Fatal(err)
		}
		cmd, done, err := freezeAt(t, target, c)
		if err != nil {
			return false, err.Error()
		}
		disk.cut(cmd.Process.Pid, cfg.Key, c.afterCrash)
		<-done
		return true, ""
	})
}

//go:build vm

package docker

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// requireDocker skips t outside a guest booted with run.sh --docker.
func requireDocker(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("THINCTL_VM_DOCKER")
	if dir == "" {
		t.Skip("needs Debian's docker.io in the VM: tests/vm/run.sh --docker")
	}
	if os.Getenv("THINCTL_VM_MODE") == "udev" {
		t.Skip("the real-Docker scenario runs in the no-udev boot (dockerd's libdevmapper is told udev is absent)")
	}
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err != nil {
		if out, err := exec.Command("mount", "-t", "cgroup2", "none", "/sys/fs/cgroup").CombinedOutput(); err != nil {
			t.Fatalf("mount cgroup2: %v: %s", err, out)
		}
	}
	return dir
}

// daemon is a dockerd of the test's.
type daemon struct {
	t    *testing.T
	bin  string
	root string
	sock string
	cmd  *exec.Cmd
	logf string
	done chan error
}

// startDockerd starts dockerd on root with the devicemapper driver on
// loop files (fs: ext4 or xfs), or with extra storage flags instead.
func startDockerd(t *testing.T, dockerDir, root string, storage ...string) *daemon {
	t.Helper()
	run := filepath.Join("/run", "dk-"+filepath.Base(root))
	if err := os.MkdirAll(run, 0o755); err != nil {
		t.Fatal(err)
	}
	d := &daemon{t: t, bin: filepath.Join(dockerDir, "bin"), root: root, sock: filepath.Join(run, "sock"), logf: filepath.Join(run, "log"), done: make(chan error, 1)}
	args := append([]string{"--data-root", root, "--exec-root", filepath.Join(run, "exec"), "--pidfile", filepath.Join(run, "pid"),
		"-H", "unix://" + d.sock, "--iptables=false", "--ip6tables=false", "--bridge=none"}, storage...)
	d.cmd = exec.Command(filepath.Join(d.bin, "dockerd"), args...)
	d.cmd.Env = append(os.Environ(), "DM_DISABLE_UDEV=1", "PATH="+d.bin+":"+os.Getenv("PATH"))
	lf, err := os.Create(d.logf)
	if err != nil {
		t.Fatal(err)
	}
	d.cmd.Stdout, d.cmd.Stderr = lf, lf
	t0 := time.Now()
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start dockerd: %v", err)
	}
	go func() { d.done <- d.cmd.Wait(); lf.Close() }()
	for {
		if _, err := d.try("version"); err == nil {
			break
		}
		select {
		case err := <-d.done:
			d.done <- err
			t.Fatalf("dockerd exited at start: %v\n%s", err, d.tail())
		case <-time.After(200 * time.Millisecond):
		}
		if time.Since(t0) > 3*time.Minute {
			t.Fatalf("dockerd not up after 3 minutes\n%s", d.tail())
		}
	}
	t.Logf("dockerd %s up in %v", strings.Join(storage, " "), time.Since(t0).Round(time.Millisecond))
	return d
}

func devicemapperFlags(fs string) []string {
	return []string{"--storage-driver", "devicemapper",
		"--storage-opt", "dm.override_udev_sync_check=true", "--storage-opt", "dm.fs=" + fs,
		"--storage-opt", "dm.basesize=512M", "--storage-opt", "dm.loopdatasize=3G", "--storage-opt", "dm.loopmetadatasize=64M"}
}

// tail is the end of dockerd's log.
func (d *daemon) tail() string {
	b, _ := os.ReadFile(d.logf)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func (d *daemon) try(args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(d.bin, "docker"), append([]string{"-H", "unix://" + d.sock}, args...)...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("docker %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return out.String(), nil
}

// docker runs the docker CLI against d and fails the test on an error.
func (d *daemon) docker(args ...string) string {
	d.t.Helper()
	t0 := time.Now()
	out, err := d.try(args...)
	d.t.Logf("docker %s: %v", strings.Join(args, " "), time.Since(t0).Round(time.Millisecond))
	if err != nil {
		d.t.Fatalf("%v\ndockerd log:\n%s", err, d.tail())
	}
	return out
}

// stop ends dockerd with SIGTERM and waits for its clean shutdown.
func (d *daemon) stop() {
	d.t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(2 * time.Minute):
		d.t.Fatalf("dockerd did not stop in 2 minutes\n%s", d.tail())
	}
}

// kill ends dockerd with SIGKILL (its containerd dies with it).
func (d *daemon) kill() {
	d.t.Helper()
	d.cmd.Process.Kill()
	<-d.done
}

// sortedLines splits output into sorted non-empty lines.
func sortedLines(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	sort.Strings(out)
	return out
}

// fingerprint describes every file under root: mode, size, mtime and, for
// files up to 256 MiB except the sparse data file, a sha256 of the content;
// skip (a path relative to root) is left out.
func fingerprint(t *testing.T, root, skip string) map[string]string {
	t.Helper()
	fp := map[string]string{}
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if strings.HasPrefix(rel, "devicemapper/mnt/") && fi.IsDir() && rel != "devicemapper/mnt" {
			return filepath.SkipDir // mount points of Docker's devices (a killed dockerd leaves some mounted)
		}
		if rel == skip {
			return nil
		}
		v := fmt.Sprintf("%v %d %d", fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		if fi.Mode().IsRegular() && fi.Size() <= 256<<20 && rel != "devicemapper/devicemapper/data" {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			h := sha256.New()
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				return err
			}
			v += " " + hex.EncodeToString(h.Sum(nil))
		}
		fp[rel] = v
		return nil
	})
	if err != nil {
		t.Fatalf("fingerprint %s: %v", root, err)
	}
	return fp
}

func diffFingerprints(a, b map[string]string) []string {
	var d []string
	for k, v := range a {
		if b[k] != v {
			d = append(d, fmt.Sprintf("%s: %q -> %q", k, v, b[k]))
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			d = append(d, k+": new")
		}
	}
	sort.Strings(d)
	return d
}

// teardown unmounts what a killed dockerd left mounted under root and
// removes its device-mapper devices and loop devices, as a reboot would.
func teardown(t *testing.T, root, prefix string) {
	t.Helper()
	for _, m := range mountsUnder(root) {
		syscall.Unmount(m, syscall.MNT_DETACH)
	}
	out, _ := exec.Command("dmsetup", "ls").Output()
	var pool []string
	for _, l := range sortedLines(string(out)) {
		name := strings.Fields(l)[0]
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		if strings.HasSuffix(name, "-pool") {
			pool = append(pool, name)
			continue
		}
		if o, err := exec.Command("dmsetup", "remove", name).CombinedOutput(); err != nil {
			t.Logf("dmsetup remove %s: %v: %s", name, err, o)
		}
	}
	for _, name := range pool {
		if o, err := exec.Command("dmsetup", "remove", name).CombinedOutput(); err != nil {
			t.Logf("dmsetup remove %s: %v: %s", name, err, o)
		}
	}
	out, _ = exec.Command("losetup", "-a").Output()
	for _, l := range sortedLines(string(out)) {
		if strings.Contains(l, root+"/") {
			dev := strings.TrimSuffix(strings.Fields(l)[0], ":")
			exec.Command("losetup", "-d", dev).Run()
		}
	}
}

// waitForArgv0 waits until a process whose argv[0] is name runs.
func waitForArgv0(ctx context.Context, name string) (int, error) {
	for {
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
			if err != nil {
				continue
			}
			if a0, _, _ := strings.Cut(string(b), "\x00"); a0 == name {
				var pid int
				fmt.Sscan(e.Name(), &pid)
				return pid, nil
			}
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

package fs

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// findHolder returns the holder with pid and kind, if any.
func findHolder(hs []Holder, pid int, kind HolderKind) (Holder, bool) {
	for _, h := range hs {
		if h.PID == pid && h.Kind == kind {
			return h, true
		}
	}
	return Holder{}, false
}

// waitHolder polls Holders until pid holds dev as kind (processes need a
// moment to chdir, open or unshare after Start).
func waitHolder(t testing.TB, dev uint64, mnt string, pid int, kind HolderKind) Holder {
	t.Helper()
	var hs []Holder
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var err error
		if hs, err = Holders(dev, mnt); err != nil {
			t.Fatalf("Holders: %v", err)
		}
		if h, ok := findHolder(hs, pid, kind); ok {
			return h
		}
	}
	t.Fatalf("pid %d not reported as %s; Holders = %+v", pid, kind, hs)
	return Holder{}
}

func sleeper() *exec.Cmd { return exec.Command("sleep", "60") }

func TestHoldersFindsProcessesKeepingTheMountBusy(t *testing.T) {
	l, mnt := mountedFS(t, Ext4)
	if err := os.Mkdir(filepath.Join(mnt, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	file, err := os.Create(filepath.Join(mnt, "sub", "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	devf, err := os.Open(l.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer devf.Close()

	cwd := sleeper()
	cwd.Dir = filepath.Join(mnt, "sub")
	openDev := sleeper()
	openDev.ExtraFiles = []*os.File{devf}
	openFile := sleeper()
	openFile.ExtraFiles = []*os.File{file}
	for _, c := range []*exec.Cmd{cwd, openDev, openFile} {
		startProcess(t, c)
	}
	tests := []struct {
		name   string
		cmd    *exec.Cmd
		kind   HolderKind
		reason string
	}{
		{"a process whose cwd is inside the mount", cwd, HolderCwd, "has its cwd inside the mount"},
		{"a process with the block device open", openDev, HolderOpenDevice, "has the device open"},
		{"a process with a file inside the mount open", openFile, HolderOpenFile, "has a file open inside the mount"},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is reported", func(t *testing.T) {
			h := waitHolder(t, l.Dev, mnt, tt.cmd.Process.Pid, tt.kind)
			if h.Command != "sleep" || h.Reason != tt.reason {
				t.Fatalf("holder = %+v, want command sleep and reason %q", h, tt.reason)
			}
		})
	}
	t.Run("our own open descriptors and our own mount are not reported", func(t *testing.T) {
		hs, err := Holders(l.Dev, mnt)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range hs {
			if h.PID == os.Getpid() {
				t.Fatalf("our own process reported: %+v", h)
			}
		}
		if len(hs) != 3 {
			t.Fatalf("Holders = %+v, want exactly the three sleepers", hs)
		}
	})
	t.Run("a cwd inside a lazily detached mount is still reported", func(t *testing.T) {
		if err := Unmount(mnt, UnmountOptions{Lazy: true}); err != nil {
			t.Fatal(err)
		}
		waitHolder(t, l.Dev, mnt, cwd.Process.Pid, HolderCwd)
	})
}

func TestHoldersReportsAMountInAnotherNamespaceOnce(t *testing.T) {
	requireTools(t, "unshare")
	l, mnt := mountedFS(t, Ext4)
	// A private copy of our mounts, as a container runtime would make,
	// with two processes in it: the shell (exec'd into sleep) and a child.
	cmd := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c", "sleep 60 & exec sleep 61")
	startProcess(t, cmd)
	var h Holder
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && len(h.PIDs) < 2; time.Sleep(20 * time.Millisecond) {
		h = waitHolder(t, l.Dev, mnt, cmd.Process.Pid, HolderMountNamespace)
	}
	if h.Reason != "holds the mount in another mount namespace with 2 processes" || len(h.PIDs) != 2 || h.PIDs[0] != cmd.Process.Pid {
		t.Fatalf("holder = %+v, want one entry for the namespace led by pid %d with 2 processes", h, cmd.Process.Pid)
	}
	hs, err := Holders(l.Dev, mnt)
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 1 {
		t.Fatalf("Holders = %+v, want only the namespace", hs)
	}
	// Removing the mount point after a lazy unmount detaches the copy in
	// the other namespace too, while its processes live on.
	if err := Unmount(mnt, UnmountOptions{Lazy: true, RemoveDir: true}); err != nil {
		t.Fatal(err)
	}
	if hs, err := Holders(l.Dev, ""); err != nil || len(hs) != 0 {
		t.Fatalf("Holders after lazy unmount and rmdir = %+v, %v; want none", hs, err)
	}
	if err := unix.Kill(cmd.Process.Pid, 0); err != nil {
		t.Fatalf("the namespace's process is gone: %v", err)
	}
}

func TestHoldersReportsOtherMountsInOurNamespace(t *testing.T) {
	l, mnt := mountedFS(t, Ext4)
	second := filepath.Join(t.TempDir(), "second")
	if err := Mount(l.Path, second, Ext4, MountOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = Unmount(second, UnmountOptions{Lazy: true, RemoveDir: true}) })
	tests := []struct {
		name       string
		mountpoint string
		want       []string
	}{
		{"the mount at the given mount point is expected", mnt, []string{second}},
		{"without a mount point every mount is reported", "", []string{mnt, second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs, err := Holders(l.Dev, tt.mountpoint)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, h := range hs {
				if h.Kind != HolderMountHere || h.PID != os.Getpid() {
					t.Fatalf("unexpected holder %+v", h)
				}
				got = append(got, h.Reason)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("reasons %q, want mounts at %q", got, tt.want)
			}
			for i, w := range tt.want {
				if got[i] != "has it mounted at "+w+" in this mount namespace" {
					t.Fatalf("reason %q does not name %s", got[i], w)
				}
			}
		})
	}
}

func TestHoldersWithoutADeviceNumberMatchesCwdByPath(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	in, out := sleeper(), sleeper()
	in.Dir = sub
	out.Dir = os.TempDir()
	startProcess(t, in)
	startProcess(t, out)
	waitHolder(t, 0, dir, in.Process.Pid, HolderCwd)
	hs, err := Holders(0, dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := findHolder(hs, out.Process.Pid, HolderCwd); ok {
		t.Fatalf("a process outside %s was reported: %+v", dir, hs)
	}
}

func TestHoldersOfAnUnusedDeviceIsEmpty(t *testing.T) {
	l := attachLoop(t, sparseFile(t, "idle", 1<<20))
	hs, err := Holders(l.Dev, "")
	if err != nil || len(hs) != 0 {
		t.Fatalf("Holders = %+v, %v; want none", hs, err)
	}
}

func TestFormatHolders(t *testing.T) {
	many := make([]Holder, 7)
	for i := range many {
		many[i] = Holder{PID: i + 1, Command: "sh", Reason: "has its cwd inside the mount"}
	}
	tests := []struct {
		name string
		in   []Holder
		want string
	}{
		{"no holders give an empty string", nil, ""},
		{"holders are joined with semicolons", []Holder{
			{PID: 1234, Command: "sleep", Reason: "has its cwd inside the mount"},
			{PID: 99, Command: "unshare", Reason: "holds the mount in another mount namespace"},
		}, "pid 1234 (sleep) has its cwd inside the mount; pid 99 (unshare) holds the mount in another mount namespace"},
		{"a holder without a command shows only its pid", []Holder{{PID: 5, Reason: "has the device open"}}, "pid 5 has the device open"},
		{"more than five holders are counted", many, "pid 1 (sh) has its cwd inside the mount; pid 2 (sh) has its cwd inside the mount; " +
			"pid 3 (sh) has its cwd inside the mount; pid 4 (sh) has its cwd inside the mount; pid 5 (sh) has its cwd inside the mount; and 2 more"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FormatHolders(tt.in); got != tt.want {
				t.Fatalf("FormatHolders = %q\nwant %q", got, tt.want)
			}
		})
	}
}

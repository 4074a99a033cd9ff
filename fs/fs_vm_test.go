//go:build vm

package fs

import (
	"bytes"
	"context"
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

// These run on a real distribution kernel (the tests/vm guest, or natively
// with make test-native) with loop, ext4 and xfs, checking what fs does
// against the kernel and against independent tools (blkid, findmnt).

// vmImageSize is big enough for mkfs.xfs (300 MiB minimum).
const vmImageSize = 512 << 20

// oracle runs a tool and returns its trimmed output.
func oracle(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// vmFilesystem formats a fresh loop device with typ through Mkfs and checks
// Probe against blkid.
func vmFilesystem(t *testing.T, typ Type) (*testLoop, string) {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireTool(t, mkfsTools[typ])
	testenv.RequireTool(t, "blkid")
	img := testenv.SparseFile(t, string(typ)+".img", vmImageSize)
	l := attachLoop(t, img)
	start := time.Now()
	if err := Mkfs(context.Background(), l.Path, typ, MkfsOptions{Label: "thinctl-vm"}); err != nil {
		t.Fatalf("Mkfs: %v", err)
	}
	t.Logf("mkfs %s of %d MiB took %v", typ, vmImageSize>>20, time.Since(start).Round(time.Millisecond))
	r, err := Probe(l.Path)
	if err != nil {
		t.Fatalf("Probe: %v", err)
	}
	if r.Type != typ || r.Size != vmImageSize {
		t.Fatalf("Probe = %+v, want %s of %d bytes", r, typ, vmImageSize)
	}
	if want := oracle(t, "blkid", "-p", "-s", "UUID", "-o", "value", l.Path); r.UUID != want {
		t.Fatalf("Probe UUID %s, blkid says %s", r.UUID, want)
	}
	if got := oracle(t, "blkid", "-p", "-s", "TYPE", "-o", "value", l.Path); got != string(typ) {
		t.Fatalf("blkid says TYPE=%s, want %s", got, typ)
	}
	return l, img
}

func TestVMMkfsProbeMountGrowOnline(t *testing.T) {
	for _, typ := range []Type{Ext4, XFS} {
		t.Run(string(typ)+" is made, probed, mounted and grown while written", func(t *testing.T) {
			testenv.RequireTool(t, map[Type]string{Ext4: "resize2fs", XFS: "xfs_growfs"}[typ])
			if typ == Ext4 && !hasCapability(unix.CAP_SYS_RESOURCE) {
				t.Skip("online ext4 resize needs CAP_SYS_RESOURCE, which this process lacks")
			}
			l, img := vmFilesystem(t, typ)
			mnt := filepath.Join(t.TempDir(), "mnt")
			if err := Mount(l.Path, mnt, typ, MountOptions{Options: []string{"noatime"}}); err != nil {
				t.Fatalf("Mount: %v", err)
			}
			t.Cleanup(func() { _ = Unmount(mnt, UnmountOptions{Lazy: true, RemoveDir: true}) })
			if ok, err := IsMounted(mnt); err != nil || !ok {
				t.Fatalf("IsMounted = %v, %v", ok, err)
			}
			if src := oracle(t, "findmnt", "-n", "-o", "SOURCE", "--mountpoint", mnt); src != l.Path {
				t.Fatalf("findmnt says %s is mounted at %s, want %s", src, mnt, l.Path)
			}
			// Keep a file open for writing across the grow.
			f, err := os.Create(filepath.Join(mnt, "data"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			chunk := bytes.Repeat([]byte("thinctl!"), 1<<17) // 1 MiB
			for i := 0; i < 8; i++ {
				if _, err := f.Write(chunk); err != nil {
					t.Fatal(err)
				}
			}
			before := statfsSize(t, mnt)
			size := growImage(t, l, img)
			start := time.Now()
			if err := Grow(context.Background(), l.Path, mnt, typ); err != nil {
				t.Fatalf("Grow: %v", err)
			}
			t.Logf("online grow of %s from %d to %d MiB took %v", typ, before>>20, size>>20, time.Since(start).Round(time.Millisecond))
			for i := 0; i < 8; i++ {
				if _, err := f.Write(chunk); err != nil {
					t.Fatalf("write after grow: %v", err)
				}
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			after := statfsSize(t, mnt)
			if after <= before+uint64(size)/3 {
				t.Fatalf("statfs size %d -> %d after doubling the device to %d", before, after, size)
			}
			b, err := os.ReadFile(filepath.Join(mnt, "data"))
			if err != nil || !bytes.Equal(b, bytes.Repeat(chunk, 16)) {
				t.Fatalf("data written across the grow reads back wrong (%d bytes, %v)", len(b), err)
			}
			if err := Unmount(mnt, UnmountOptions{Lazy: true, RemoveDir: true}); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(mnt); !os.IsNotExist(err) {
				t.Fatalf("mount point left behind: %v", err)
			}
			if r, err := Probe(l.Path); err != nil || r.Size != uint64(size) {
				t.Fatalf("Probe after grow = %+v, %v; want %d bytes", r, err, size)
			}
		})
	}
}

func TestVMTwoXFSCopiesWithOneUUIDMountAtOnce(t *testing.T) {
	l, img := vmFilesystem(t, XFS)
	mnt := filepath.Join(t.TempDir(), "base")
	if err := Mount(l.Path, mnt, XFS, MountOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mnt, "hello"), []byte("base"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Unmount(mnt, UnmountOptions{RemoveDir: true}); err != nil {
		t.Fatal(err)
	}
	cp := copySparse(t, img)
	l2 := attachLoop(t, cp)
	uuid1 := oracle(t, "blkid", "-p", "-s", "UUID", "-o", "value", l.Path)
	if uuid2 := oracle(t, "blkid", "-p", "-s", "UUID", "-o", "value", l2.Path); uuid1 != uuid2 {
		t.Fatalf("copies have UUIDs %s and %s, want one", uuid1, uuid2)
	}
	var mnts []string
	for i, dev := range []string{l.Path, l2.Path} {
		m := filepath.Join(t.TempDir(), "copy"+strconv.Itoa(i))
		if err := Mount(dev, m, XFS, MountOptions{}); err != nil {
			t.Fatalf("Mount of copy %d with the same UUID: %v", i, err)
		}
		t.Cleanup(func() { _ = Unmount(m, UnmountOptions{Lazy: true, RemoveDir: true}) })
		mnts = append(mnts, m)
	}
	// Both are live: a write in one is not in the other.
	if err := os.WriteFile(filepath.Join(mnts[1], "only-in-copy"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, m := range mnts {
		if b, err := os.ReadFile(filepath.Join(m, "hello")); err != nil || string(b) != "base" {
			t.Fatalf("%s/hello = %q, %v", m, b, err)
		}
	}
	if _, err := os.Stat(filepath.Join(mnts[0], "only-in-copy")); !os.IsNotExist(err) {
		t.Fatalf("a file written in the copy shows in the original: %v", err)
	}
	if opts := oracle(t, "findmnt", "-n", "-o", "OPTIONS", "--mountpoint", mnts[0]); !strings.Contains(opts, "nouuid") {
		t.Fatalf("findmnt options %q lack nouuid", opts)
	}
}

func TestVMHoldersInAnotherMountNamespace(t *testing.T) {
	for _, typ := range []Type{Ext4, XFS} {
		t.Run(string(typ)+" mount held in another namespace is reported and released", func(t *testing.T) {
			l, _ := vmFilesystem(t, typ)
			mnt := filepath.Join(t.TempDir(), "mnt")
			if err := Mount(l.Path, mnt, typ, MountOptions{}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = Unmount(mnt, UnmountOptions{Lazy: true, RemoveDir: true}) })
			// Go's CLONE_NEWNS also makes the child's mounts private.
			cmd := exec.Command("sleep", "60")
			startProcess(t, cmd)
			cmd2 := exec.Command("sleep", "60")
			cmd2.SysProcAttr = &unix.SysProcAttr{Unshareflags: unix.CLONE_NEWNS, Setpgid: true}
			if err := cmd2.Start(); err != nil {
				t.Fatal(err)
			}
			pid := cmd2.Process.Pid
			stopped := false
			stop := func() {
				if !stopped {
					_ = unix.Kill(-pid, unix.SIGKILL)
					_ = cmd2.Wait()
					stopped = true
				}
			}
			t.Cleanup(stop)
			h := waitHolder(t, l.Dev, mnt, pid, HolderMountNamespace)
			if h.Command != "sleep" || len(h.PIDs) != 1 {
				t.Fatalf("holder = %+v, want sleep alone in its namespace", h)
			}
			// Oracle: findmnt reading the sleeper's mount table.
			if got := oracle(t, "findmnt", "-N", strconv.Itoa(pid), "-n", "-o", "TARGET", "--source", l.Path); got != mnt {
				t.Fatalf("findmnt -N %d says %q, want %s", pid, got, mnt)
			}
			if s := FormatHolders([]Holder{h}); !strings.Contains(s, "pid "+strconv.Itoa(pid)+" (sleep) holds the mount in another mount namespace") {
				t.Fatalf("FormatHolders = %q", s)
			}
			// The plain sleeper in our namespace holds nothing.
			if hs, _ := Holders(l.Dev, mnt); len(hs) != 1 {
				t.Fatalf("Holders = %+v, want only the namespace", hs)
			}
			if err := Unmount(mnt, UnmountOptions{Lazy: true, RemoveDir: true}); err != nil {
				t.Fatalf("lazy Unmount with a copy in another namespace: %v", err)
			}
			if _, err := os.Stat(mnt); !os.IsNotExist(err) {
				t.Fatalf("mount point left behind: %v", err)
			}
			// rmdir of the mount point detaches the copies in other
			// namespaces (Linux >= 3.18) while their processes live on.
			if hs, err := Holders(l.Dev, ""); err != nil || len(hs) != 0 {
				t.Fatalf("Holders after lazy unmount and rmdir = %+v, %v; want none", hs, err)
			}
			stop()
			if hs, err := Holders(l.Dev, ""); err != nil || len(hs) != 0 {
				t.Fatalf("Holders after the holder exited = %+v, %v; want none", hs, err)
			}
		})
	}
}

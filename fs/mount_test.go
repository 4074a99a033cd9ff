package fs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"
)

func TestMountArgs(t *testing.T) {
	tests := []struct {
		name      string
		t         Type
		opts      MountOptions
		wantFlags uintptr
		wantData  string
	}{
		{"no options give no flags and no data", Ext4, MountOptions{}, 0, ""},
		{"xfs always gets nouuid", XFS, MountOptions{}, 0, "nouuid"},
		{"xfs does not get nouuid twice", XFS, MountOptions{Options: []string{"nouuid"}}, 0, "nouuid"},
		{"flag options become flags and the rest data", Ext4,
			MountOptions{Options: []string{"noatime", "nodev", "nosuid", "noexec", "discard", "sync", "dirsync", "data=ordered"}},
			unix.MS_NOATIME | unix.MS_NODEV | unix.MS_NOSUID | unix.MS_NOEXEC | unix.MS_SYNCHRONOUS | unix.MS_DIRSYNC,
			"discard,data=ordered"},
		{"ReadOnly sets MS_RDONLY even after rw", Ext4, MountOptions{Options: []string{"rw"}, ReadOnly: true}, unix.MS_RDONLY, ""},
		{"ro is a flag", Ext4, MountOptions{Options: []string{"ro"}}, unix.MS_RDONLY, ""},
		{"the last access-time mode wins", Ext4, MountOptions{Options: []string{"noatime", "relatime"}}, unix.MS_RELATIME, ""},
		{"a later option clears an earlier flag", Ext4, MountOptions{Options: []string{"nodev", "dev", "defaults"}}, 0, ""},
		{"blank options are skipped", Ext4, MountOptions{Options: []string{" ", ""}}, 0, ""},
		{"a label becomes a quoted context option", XFS,
			MountOptions{Label: "system_u:object_r:container_file_t:s0:c1,c2"}, 0,
			`nouuid,context="system_u:object_r:container_file_t:s0:c1,c2"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			flags, data, err := mountArgs(tt.t, tt.opts)
			if err != nil || flags != tt.wantFlags || data != tt.wantData {
				t.Fatalf("mountArgs = %#x, %q, %v; want %#x, %q", flags, data, err, tt.wantFlags, tt.wantData)
			}
		})
	}
}

func TestMountArgsRefusesConflictingLabels(t *testing.T) {
	tests := []struct {
		name string
		opts MountOptions
	}{
		{"a label with a double quote", MountOptions{Label: `a"b`}},
		{"a label and a context option", MountOptions{Label: "x", Options: []string{"context=y"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := mountArgs(Ext4, tt.opts); err == nil {
				t.Fatal("mountArgs accepted it")
			}
		})
	}
}

func TestMountRefusesAnUnknownType(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "m")
	if err := Mount("/dev/null", dir, "btrfs", MountOptions{}); !errors.Is(err, ErrUnsupportedType) {
		t.Fatalf("Mount error = %v, want ErrUnsupportedType", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("Mount created the mount point for a refused type: %v", err)
	}
}

func TestMountWriteReadUnmount(t *testing.T) {
	for _, typ := range []Type{Ext4, XFS} {
		t.Run(string(typ)+" mounts, holds a file, and unmounts lazily removing the directory", func(t *testing.T) {
			img := imageFile(t, typ)
			l := attachLoop(t, img)
			parent := t.TempDir()
			mnt := filepath.Join(parent, "mnt")
			if err := Mount(l.Path, mnt, typ, MountOptions{Options: []string{"noatime", "nodev"}}); err != nil {
				t.Fatalf("Mount: %v", err)
			}
			t.Cleanup(func() { _ = Unmount(mnt, UnmountOptions{Lazy: true, RemoveDir: true}) })
			var sfs unix.Statfs_t
			if err := unix.Statfs(mnt, &sfs); err != nil {
				t.Fatal(err)
			}
			if sfs.Flags&unix.ST_NODEV == 0 || sfs.Flags&unix.ST_NOATIME == 0 {
				t.Errorf("statfs flags %#x lack nodev and noatime", sfs.Flags)
			}
			if err := os.WriteFile(filepath.Join(mnt, "hello"), []byte("thin"), 0o600); err != nil {
				t.Fatal(err)
			}
			if b, err := os.ReadFile(filepath.Join(mnt, "hello")); err != nil || string(b) != "thin" {
				t.Fatalf("read back %q, %v", b, err)
			}
			link := filepath.Join(parent, "link")
			if err := os.Symlink(mnt, link); err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{mnt, link, mnt + "/"} {
				if ok, err := IsMounted(p); err != nil || !ok {
					t.Errorf("IsMounted(%s) = %v, %v; want true", p, ok, err)
				}
			}
			if ok, err := IsMounted(parent); err != nil || ok {
				t.Errorf("IsMounted(parent %s) = %v, %v; want false", parent, ok, err)
			}
			if err := Unmount(link, UnmountOptions{Lazy: true, RemoveDir: true}); err != nil {
				t.Fatalf("Unmount through a symlink: %v", err)
			}
			if _, err := os.Stat(mnt); !os.IsNotExist(err) {
				t.Errorf("mount point still there after Unmount with RemoveDir: %v", err)
			}
			if ok, err := IsMounted(mnt); err != nil || ok {
				t.Errorf("IsMounted after Unmount = %v, %v; want false", ok, err)
			}
		})
	}
}

func TestMountCreatesTheMountPointPrivate(t *testing.T) {
	_, mnt := mountedFS(t, Ext4)
	if err := Unmount(mnt, UnmountOptions{}); err != nil {
		t.Fatalf("Unmount: %v", err)
	}
	st, err := os.Stat(mnt)
	if err != nil {
		t.Fatalf("Unmount without RemoveDir removed the directory: %v", err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("mount point mode %v, want 0700", st.Mode().Perm())
	}
}

func TestMountOfGarbageSaysWhatWentWrong(t *testing.T) {
	l := attachLoop(t, sparseFile(t, "zeros", 8<<20))
	mnt := filepath.Join(t.TempDir(), "mnt")
	err := Mount(l.Path, mnt, Ext4, MountOptions{})
	if err == nil {
		_ = Unmount(mnt, UnmountOptions{Lazy: true})
		t.Fatal("mounting zeros as ext4 succeeded")
	}
	if !strings.Contains(err.Error(), l.Path) || !strings.Contains(err.Error(), "ext4") {
		t.Fatalf("Mount error %q does not name the device and type", err)
	}
}

func TestUnmountOfWhatIsNotMounted(t *testing.T) {
	tests := []struct {
		name      string
		exists    bool
		removeDir bool
		wantErr   error
	}{
		{"a plain directory is ErrNotMounted", true, false, ErrNotMounted},
		{"a missing directory is ErrNotMounted", false, false, ErrNotMounted},
		{"a plain directory with RemoveDir is removed", true, true, nil},
		{"a missing directory with RemoveDir is fine", false, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "m")
			if tt.exists {
				if err := os.Mkdir(dir, 0o700); err != nil {
					t.Fatal(err)
				}
			}
			err := Unmount(dir, UnmountOptions{Lazy: true, RemoveDir: tt.removeDir})
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Unmount = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Unmount = %v", err)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Fatalf("directory still there: %v", err)
			}
		})
	}
}

func TestUnmountOfABusyMountSaysSo(t *testing.T) {
	_, mnt := mountedFS(t, Ext4)
	f, err := os.Create(filepath.Join(mnt, "open"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	err = Unmount(mnt, UnmountOptions{})
	if !errors.Is(err, unix.EBUSY) || !strings.Contains(err.Error(), "busy") {
		t.Fatalf("Unmount of a busy mount = %v, want EBUSY explained", err)
	}
	if ok, _ := IsMounted(mnt); !ok {
		t.Fatal("the failed Unmount unmounted it anyway")
	}
}

func TestXFSMountsTwoCopiesWithOneUUID(t *testing.T) {
	img := imageFile(t, XFS)
	cp := copySparse(t, img)
	a, err1 := Probe(img)
	c, err2 := Probe(cp)
	if err1 != nil || err2 != nil || a.UUID != c.UUID {
		t.Fatalf("copies probe as %+v, %v and %+v, %v; want one UUID", a, err1, c, err2)
	}
	var mnts []string
	for i, p := range []string{img, cp} {
		l := attachLoop(t, p)
		mnt := filepath.Join(t.TempDir(), "mnt")
		if err := Mount(l.Path, mnt, XFS, MountOptions{}); err != nil {
			t.Fatalf("Mount of copy %d: %v", i, err)
		}
		t.Cleanup(func() { _ = Unmount(mnt, UnmountOptions{Lazy: true, RemoveDir: true}) })
		mnts = append(mnts, mnt)
	}
	for _, mnt := range mnts {
		if ok, err := IsMounted(mnt); err != nil || !ok {
			t.Errorf("IsMounted(%s) = %v, %v with both copies mounted", mnt, ok, err)
		}
	}
}

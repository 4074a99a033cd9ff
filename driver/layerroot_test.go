package driver

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// outsideDir makes a directory standing for what lies outside a layer: a
// file with a secret, a subdirectory, and its state to compare later.
func outsideDir(t *testing.T) (string, string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "secret"), []byte("the host's secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	return dir, treeState(t, dir)
}

// treeState describes every entry under dir (name, type, mode, size,
// content digest, mtime, atime of regular files) so that a test can tell
// whether anything there was touched.
func treeState(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %o %d %d.%d", strings.TrimPrefix(p, dir), st.Mode, st.Size, st.Mtim.Sec, st.Mtim.Nsec)
		if st.Mode&unix.S_IFMT == unix.S_IFREG {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, " %x", sha256.Sum256(data))
		}
		b.WriteString("\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestALayerRootThatIsASymlinkOrAFileIsRefusedNamingIt(t *testing.T) {
	outside, before := outsideDir(t)
	base := t.TempDir()
	link := filepath.Join(base, "rootfs")
	if err := os.Symlink(outside, link); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(base, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ root, says string }{
		{link, "is a symlink to \"" + outside + "\""},
		{file, "is a regular file"},
		{fifo, "is a FIFO"},
	} {
		err := CheckLayerRoot(c.root)
		if !errors.Is(err, ErrBadLayerRoot) || !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.root+" "+c.says) {
			t.Errorf("CheckLayerRoot(%s) = %v, want ErrBadLayerRoot saying %q", c.root, err, c.says)
		}
		if changes, err := ChangesDirs(c.root, ""); !errors.Is(err, ErrBadLayerRoot) {
			t.Errorf("ChangesDirs(%s) = %v, %v; want ErrBadLayerRoot", c.root, changes, err)
		}
		if _, err := ChangesDirs(t.TempDir(), c.root); !errors.Is(err, ErrBadLayerRoot) {
			t.Errorf("ChangesDirs with parent %s = %v; want ErrBadLayerRoot", c.root, err)
		}
	}
	if err := CheckLayerRoot(outside); err != nil {
		t.Errorf("a real directory is refused: %v", err)
	}
	if after := treeState(t, outside); after != before {
		t.Errorf("the directory the symlinked root names changed:\n%s\nwas\n%s", after, before)
	}
}

func TestTheTarWriterNeverReadsThroughASymlinkedDirectoryPlantedInTheTree(t *testing.T) {
	outside, before := outsideDir(t)
	root := t.TempDir()
	// Another program swapped the layer's directory "etc" for a symlink
	// after the walk saw it as a directory.
	if err := os.Symlink(outside, filepath.Join(root, "etc")); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := NewTarWriter(&buf)
	err := tw.AddPath(root, "etc/secret")
	if !errors.Is(err, ErrUnsafeEntry) {
		t.Fatalf("AddPath through a planted symlink = %v, want ErrUnsafeEntry", err)
	}
	if bytes.Contains(buf.Bytes(), []byte("the host's secret")) {
		t.Error("the layer stream carries the content of a file outside the layer")
	}
	if after := treeState(t, outside); after != before {
		t.Errorf("the outside directory changed:\n%s\nwas\n%s", after, before)
	}
}

func TestOpeningAFIFOOrADeviceInALayerForContentNeverBlocks(t *testing.T) {
	requireRoot(t)
	root := t.TempDir()
	if err := unix.Mkfifo(filepath.Join(root, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mknod(filepath.Join(root, "tty"), unix.S_IFCHR|0o600, int(unix.Mkdev(5, 0))); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"fifo", "tty"} {
		done := make(chan error, 1)
		go func() {
			f, err := OpenRegularInRoot(root, name, nil)
			if f != nil {
				f.Close()
			}
			done <- err
		}()
		select {
		case err := <-done:
			if !errors.Is(err, ErrUnsafeEntry) || !strings.Contains(err.Error(), "not a regular file") {
				t.Errorf("opening %s for content = %v, want ErrUnsafeEntry", name, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("opening %s for content still blocks after 5 s", name)
		}
	}
}

func TestARegularFileSwappedBeforeItsContentIsReadIsRefused(t *testing.T) {
	root := t.TempDir()
	p := filepath.Join(root, "f")
	if err := os.WriteFile(p, []byte("first"), 0o644); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p, p+".old"); err != nil { // kept, so its inode number is not reused
		t.Fatal(err)
	}
	if err := os.WriteFile(p+".new", []byte("second"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p+".new", p); err != nil {
		t.Fatal(err)
	}
	if f, err := OpenRegularInRoot(root, "f", &st); !errors.Is(err, ErrUnsafeEntry) {
		if f != nil {
			f.Close()
		}
		t.Fatalf("OpenRegularInRoot of a replaced file = %v, want ErrUnsafeEntry", err)
	}
}

func TestTheStepwiseOpenRefusesSymlinksLikeOpenat2(t *testing.T) {
	outside, _ := outsideDir(t)
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "a", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "a", "b", "f"), []byte("in"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "a", "out")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("b/f", filepath.Join(root, "a", "lf")); err != nil {
		t.Fatal(err)
	}
	rootFd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(rootFd)
	flags := unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC
	fd, err := openStepwise(rootFd, "a/b/f", flags)
	if err != nil {
		t.Fatalf("a plain path: %v", err)
	}
	f := os.NewFile(uintptr(fd), "f")
	data, _ := io.ReadAll(f)
	f.Close()
	if string(data) != "in" {
		t.Errorf("read %q", data)
	}
	for _, rel := range []string{"a/out/secret", "a/lf", "a/../a/b/f"} {
		if fd, err := openStepwise(rootFd, rel, flags); err == nil {
			unix.Close(fd)
			t.Errorf("openStepwise(%s) followed a symlink or climbed", rel)
		}
	}
}

func TestWriteChangesOfATreeWithAFIFOWritesItsHeaderOnly(t *testing.T) {
	root := t.TempDir()
	if err := unix.Mkfifo(filepath.Join(root, "pipe"), 0o640); err != nil {
		t.Fatal(err)
	}
	changes, err := ChangesDirs(root, "")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	var buf bytes.Buffer
	go func() { done <- WriteChanges(&buf, root, changes) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("writing a tree with a FIFO blocks")
	}
	hdr, err := tar.NewReader(&buf).Next()
	if err != nil || hdr.Name != "pipe" || hdr.Typeflag != tar.TypeFifo {
		t.Fatalf("first entry %+v, %v; want the FIFO pipe", hdr, err)
	}
}

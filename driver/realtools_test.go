package driver_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/driver"
	"github.com/thinctl/thinctl/driver/drivertest"
)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// tool runs a command in dir and returns its stdout, skipping the test
// when the command is not installed.
func tool(t *testing.T, dir string, name string, args ...string) []byte {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s is not installed", name)
	}
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// typesIn lists the typeflags of an archive's entries as tar.Reader sees them.
func typesIn(t *testing.T, stream []byte) string {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(stream))
	var types []byte
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		types = append(types, h.Typeflag)
	}
	return string(types)
}

// sameTree fails unless every path listed has the same type, mode bits
// and content (or symlink target) in a and b.
func sameTree(t *testing.T, a, b string, paths ...string) {
	t.Helper()
	for _, p := range paths {
		fa, err := os.Lstat(filepath.Join(a, p))
		must(t, err)
		fb, err := os.Lstat(filepath.Join(b, p))
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if fa.Mode() != fb.Mode() {
			t.Errorf("%s: mode %v, want %v", p, fb.Mode(), fa.Mode())
		}
		switch {
		case fa.Mode().IsRegular():
			ba, _ := os.ReadFile(filepath.Join(a, p))
			bb, _ := os.ReadFile(filepath.Join(b, p))
			if !bytes.Equal(ba, bb) {
				t.Errorf("%s: content differs (%d bytes, want %d)", p, len(bb), len(ba))
			}
		case fa.Mode()&os.ModeSymlink != 0:
			la, _ := os.Readlink(filepath.Join(a, p))
			lb, _ := os.Readlink(filepath.Join(b, p))
			if la != lb {
				t.Errorf("%s: symlink to %q, want %q", p, lb, la)
			}
		}
	}
}

func TestGitArchiveOutputWithItsPAXGlobalHeaderImportsByteForByte(t *testing.T) {
	repo := t.TempDir()
	tool(t, repo, "git", "init", "-q")
	must(t, os.MkdirAll(filepath.Join(repo, "src/lib"), 0o755))
	must(t, os.WriteFile(filepath.Join(repo, "src/lib/a.txt"), []byte("alpha\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(repo, "run.sh"), []byte("#!/bin/sh\necho hi\n"), 0o755))
	must(t, os.Symlink("src/lib/a.txt", filepath.Join(repo, "link")))
	tool(t, repo, "git", "add", ".")
	tool(t, repo, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
	// tar.umask 022 makes git write the modes the work tree has.
	stream := tool(t, repo, "git", "-c", "tar.umask=0022", "archive", "--format=tar", "HEAD")
	if types := typesIn(t, stream); !strings.HasPrefix(types, "g") {
		t.Fatalf("git archive wrote entry types %q; the test needs its PAX global header first", types)
	}
	layer := t.TempDir()
	if _, err := driver.ApplyTar(layer, bytes.NewReader(stream), nil); err != nil {
		t.Fatalf("ApplyTar of git archive output: %v", err)
	}
	sameTree(t, repo, layer, "src", "src/lib", "src/lib/a.txt", "run.sh", "link")
}

// TestGNUTarSparseOutputImportsByteForByteAndStaysSparse archives an 8 MiB
// file holding 8 KiB of data with GNU tar --sparse, in both of its sparse
// forms (old GNU, type 'S'; PAX 1.0), and imports each.
func TestGNUTarSparseOutputImportsByteForByteAndStaysSparse(t *testing.T) {
	src := t.TempDir()
	p := filepath.Join(src, "sparse")
	f, err := os.Create(p)
	must(t, err)
	must(t, f.Truncate(8<<20))
	_, err = f.WriteAt(bytes.Repeat([]byte("d"), 4096), 1<<20)
	must(t, err)
	_, err = f.WriteAt(bytes.Repeat([]byte("e"), 4096), 5<<20)
	must(t, err)
	must(t, f.Close())
	for _, c := range []struct{ format, wantType string }{{"gnu", "S"}, {"posix", "0"}} {
		t.Run(c.format, func(t *testing.T) {
			stream := tool(t, src, "tar", "--sparse", "--format="+c.format, "-cf", "-", "sparse")
			if types := typesIn(t, stream); types != c.wantType {
				t.Fatalf("GNU tar --format=%s wrote entry types %q, want %q", c.format, types, c.wantType)
			}
			if len(stream) > 64<<10 {
				t.Fatalf("GNU tar --format=%s wrote %d bytes: not a sparse archive", c.format, len(stream))
			}
			layer := t.TempDir()
			if _, err := driver.ApplyTar(layer, bytes.NewReader(stream), nil); err != nil {
				t.Fatalf("ApplyTar of tar --sparse --format=%s output: %v", c.format, err)
			}
			sameTree(t, src, layer, "sparse")
			var st unix.Stat_t
			must(t, unix.Stat(filepath.Join(layer, "sparse"), &st))
			if st.Size != 8<<20 || st.Blocks*512 > 256<<10 {
				t.Errorf("imported file: size %d, %d bytes allocated; want 8 MiB with holes", st.Size, st.Blocks*512)
			}
		})
	}
}

// tmpfsLayer mounts a tmpfs of size bytes as a layer root.
func tmpfsLayer(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	must(t, unix.Mount("tmpfs", dir, "tmpfs", 0, "size="+size))
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

func TestAnEntryLargerThanTheLayersFreeSpaceIsRefusedBeforeItIsWritten(t *testing.T) {
	layer := tmpfsLayer(t, "1m")
	stream := drivertest.Tar(drivertest.Entry{Header: tar.Header{Name: "big", Typeflag: tar.TypeReg, Mode: 0o644}, Body: strings.Repeat("x", 2<<20)})
	_, err := driver.ApplyTar(layer, bytes.NewReader(stream), nil)
	if !errors.Is(err, driver.ErrNoSpace) || !strings.Contains(err.Error(), "tar entry big is 2097152 bytes") {
		t.Fatalf("ApplyTar of a 2 MiB file into 1 MiB = %v; want ErrNoSpace naming the entry", err)
	}
	if _, err := os.Lstat(filepath.Join(layer, "big")); !os.IsNotExist(err) {
		t.Errorf("the refused entry was created (%v)", err)
	}
}

func TestAllEntriesTogetherNeverTakeMoreThanTheLayersFreeSpace(t *testing.T) {
	layer := tmpfsLayer(t, "1m")
	var entries []drivertest.Entry
	for _, n := range []string{"a", "b", "c"} {
		entries = append(entries, drivertest.Entry{Header: tar.Header{Name: n, Typeflag: tar.TypeReg, Mode: 0o644}, Body: strings.Repeat(n, 400<<10)})
	}
	_, err := driver.ApplyTar(layer, bytes.NewReader(drivertest.Tar(entries...)), nil)
	if !errors.Is(err, driver.ErrNoSpace) || !strings.Contains(err.Error(), "tar entry c") {
		t.Fatalf("ApplyTar of 3 × 400 KiB into 1 MiB = %v; want ErrNoSpace at c", err)
	}
	for _, n := range []string{"a", "b"} {
		if b, err := os.ReadFile(filepath.Join(layer, n)); err != nil || len(b) != 400<<10 {
			t.Errorf("%s: %d bytes, %v", n, len(b), err)
		}
	}
}

func TestXattrsTheFilesystemRefusesAreReportedOrFatalWhenStrict(t *testing.T) {
	stream := drivertest.Tar(drivertest.Entry{Header: tar.Header{Name: "s", Typeflag: tar.TypeSymlink, Linkname: "t",
		PAXRecords: map[string]string{"SCHILY.xattr.user.note": "v"}}})
	res, err := driver.ApplyTarWith(t.TempDir(), bytes.NewReader(stream), driver.ApplyOptions{})
	if err != nil || len(res.SkippedXattrs) != 1 || res.SkippedXattrs[0].Path != "s" || res.SkippedXattrs[0].Name != "user.note" {
		t.Fatalf("ApplyTarWith of user.* on a symlink = %+v, %v; want it skipped and reported", res, err)
	}
	if _, err := driver.ApplyTarWith(t.TempDir(), bytes.NewReader(stream), driver.ApplyOptions{StrictXattrs: true}); err == nil || !strings.Contains(err.Error(), "set xattr user.note on s") {
		t.Fatalf("with StrictXattrs: %v; want the xattr's error", err)
	}
}

func TestTheRootEntrySetsTheRootsOwnMetadata(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chown needs root")
	}
	layer := t.TempDir()
	mtime := drivertest.SentinelTime
	stream := drivertest.Tar(drivertest.Entry{Header: tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o1711, Uid: 42, Gid: 43, ModTime: mtime}},
		drivertest.Entry{Header: tar.Header{Name: "f", Typeflag: tar.TypeReg, Mode: 0o644}, Body: "x"})
	if _, err := driver.ApplyTar(layer, bytes.NewReader(stream), nil); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	must(t, unix.Lstat(layer, &st))
	if st.Mode != unix.S_IFDIR|0o1711 || st.Uid != 42 || st.Gid != 43 || st.Mtim.Nano() != mtime.UnixNano() {
		t.Errorf("root after ./ entry: mode %o, owner %d:%d, mtime %d; want dir 1711, 42:43, %d", st.Mode, st.Uid, st.Gid, st.Mtim.Nano(), mtime.UnixNano())
	}
}

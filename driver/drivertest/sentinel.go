package drivertest

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// SentinelTime is the mtime and atime of everything MakeSentinel creates:
// far from any time an archive or the clock would set.
var SentinelTime = time.Date(2001, 2, 3, 4, 5, 6, 7, time.UTC)

// MakeSentinel fills the empty directory dir with what a hostile archive
// would aim at: a file (0640, owned 1234:5678), a directory "victim"
// holding a file and a subdirectory, a symlink, all dated SentinelTime.
// dir itself gets mode 0751 and the same time.
func MakeSentinel(dir string) error {
	files := []struct {
		rel, body string
		mode      os.FileMode
		dir       bool
	}{
		{"file", "sentinel file: not to be touched\n", 0o640, false},
		{"victim", "", 0o750, true},
		{"victim/inner", "inner\n", 0o600, false},
		{"victim/sub", "", 0o700, true},
		{"victim/sub/deep", "deep\n", 0o644, false},
	}
	for _, f := range files {
		p := filepath.Join(dir, f.rel)
		var err error
		if f.dir {
			err = os.Mkdir(p, f.mode)
		} else {
			err = os.WriteFile(p, []byte(f.body), f.mode)
		}
		if err == nil {
			err = os.Chmod(p, f.mode)
		}
		if err != nil {
			return err
		}
	}
	if err := os.Chown(filepath.Join(dir, "file"), 1234, 5678); err != nil {
		return err
	}
	if err := os.Symlink("file", filepath.Join(dir, "link")); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o751); err != nil {
		return err
	}
	ts := unix.NsecToTimespec(SentinelTime.UnixNano())
	var paths []string
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		paths = append(paths, p)
		return err
	})
	if err != nil {
		return err
	}
	for i := len(paths) - 1; i >= 0; i-- { // children before their directory
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, paths[i], []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
	}
	return nil
}

// Snapshot describes dir and everything below it, one line a path: type
// and mode, owner, size, link count, mtime, ctime (which any chmod, chown,
// link, write or rename moves, and reading does not), and a content hash
// or symlink target. Two snapshots are equal only if nothing was created,
// removed, written or had its metadata set.
func Snapshot(dir string) (string, error) {
	var lines []string
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		what := ""
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			what = fmt.Sprintf("sha256:%x", sha256.Sum256(b))
		case unix.S_IFLNK:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			what = "-> " + t
		}
		lines = append(lines, fmt.Sprintf("%s mode=%o uid=%d gid=%d size=%d nlink=%d mtime=%d.%09d ctime=%d.%09d %s",
			rel, st.Mode, st.Uid, st.Gid, st.Size, st.Nlink, st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec, what))
		return nil
	})
	sort.Strings(lines)
	return strings.Join(lines, "\n"), err
}

// SnapshotDiff returns the lines of before and after that differ, or "".
func SnapshotDiff(before, after string) string {
	b, a := map[string]bool{}, map[string]bool{}
	for _, l := range strings.Split(before, "\n") {
		b[l] = true
	}
	for _, l := range strings.Split(after, "\n") {
		a[l] = true
	}
	var out []string
	for _, l := range strings.Split(before, "\n") {
		if !a[l] {
			out = append(out, "- "+l)
		}
	}
	for _, l := range strings.Split(after, "\n") {
		if !b[l] {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}

// IsRealDir reports an error unless p is a directory itself, not a
// symlink to one nor any other file.
func IsRealDir(p string) error {
	fi, err := os.Lstat(p)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is %v, not a real directory", p, fi.Mode().Type())
	}
	return nil
}

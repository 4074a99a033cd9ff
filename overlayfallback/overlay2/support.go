package overlay2

import (
	"bufio"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/driver"
	"github.com/thinctl/thinctl/errdefs"
)

// Dirent is one record of getdents64 output.
type Dirent struct {
	Ino  uint64
	Type uint8 // unix.DT_*
	Name string
}

// direntHeader is the fixed part of struct linux_dirent64: d_ino (8),
// d_off (8), d_reclen (2), d_type (1); the name follows.
const direntHeader = 19

// ParseDirents decodes a buffer filled by getdents64(2). A record whose
// length is too short, runs past the buffer or has no NUL-terminated
// name is an error.
func ParseDirents(buf []byte) ([]Dirent, error) {
	var out []Dirent
	for off := 0; off < len(buf); {
		if len(buf)-off < direntHeader {
			return out, errors.Errorf("dirent at offset %d: %d bytes left, a record needs at least %d", off, len(buf)-off, direntHeader)
		}
		rec := buf[off:]
		reclen := int(binary.LittleEndian.Uint16(rec[16:18]))
		if reclen < direntHeader+1 || reclen > len(rec) {
			return out, errors.Errorf("dirent at offset %d has record length %d (buffer has %d bytes left)", off, reclen, len(rec))
		}
		name := rec[direntHeader:reclen]
		end := 0
		for end < len(name) && name[end] != 0 {
			end++
		}
		if end == len(name) {
			return out, errors.Errorf("dirent at offset %d has no NUL-terminated name", off)
		}
		out = append(out, Dirent{
			Ino:  binary.LittleEndian.Uint64(rec[0:8]),
			Type: rec[18],
			Name: string(name[:end]),
		})
		off += reclen
	}
	return out, nil
}

// readDirents lists dir with getdents64 directly, keeping d_type.
func readDirents(dir string) ([]Dirent, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, errors.Wrapf(err, "open %s", dir)
	}
	defer unix.Close(fd)
	var out []Dirent
	buf := make([]byte, 32<<10)
	for {
		n, err := unix.Getdents(fd, buf)
		if err != nil {
			return nil, errors.Wrapf(err, "getdents %s", dir)
		}
		if n == 0 {
			return out, nil
		}
		ds, err := ParseDirents(buf[:n])
		if err != nil {
			return nil, errors.Wrapf(err, "getdents %s", dir)
		}
		out = append(out, ds...)
	}
}

// errNoDType explains the missing d_type support and how to fix it.
func errNoDType(dir, fsName string) error {
	hint := "use a filesystem that records file types in directory entries"
	if fsName == "xfs" {
		hint = "this xfs was made with ftype=0; recreate it with mkfs.xfs -n ftype=1"
	}
	return errors.Wrapf(driver.ErrNotSupported,
		"overlay2 needs d_type support but the %s filesystem holding %s returns DT_UNKNOWN (%s)", fsName, dir, hint)
}

// checkDType creates a file in dir, reads the directory back with getdents
// and requires the file to come back as DT_REG.
func checkDType(dir string) (bool, error) {
	f, err := os.CreateTemp(dir, ".dtype-check-")
	if err != nil {
		return false, errors.Wrapf(err, "create a d_type probe file in %s", dir)
	}
	name := filepath.Base(f.Name())
	f.Close()
	defer os.Remove(f.Name())
	ents, err := readDirents(dir)
	if err != nil {
		return false, err
	}
	for _, e := range ents {
		if e.Name == name {
			return e.Type == unix.DT_REG, nil
		}
	}
	return false, errors.Errorf("the d_type probe file %s did not show up in getdents of %s", name, dir)
}

// fsNames maps statfs magic numbers to the names Status shows.
var fsNames = map[int64]string{
	0xEF53:     "extfs",
	0x58465342: "xfs",
	0x9123683E: "btrfs",
	0x01021994: "tmpfs",
	0x794c7630: "overlayfs",
	0x61756673: "aufs",
	0x2fc12fc1: "zfs",
	0xf15f:     "ecryptfs",
	0xF2F52010: "f2fs",
	0x6969:     "nfs",
	0x65735546: "fuse",
}

// backingFS names the filesystem holding p.
func backingFS(p string) (string, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(p, &st); err != nil {
		return "", errors.Wrapf(err, "statfs %s", p)
	}
	if n, ok := fsNames[int64(st.Type)]; ok {
		return n, nil
	}
	return "unknown", nil
}

// existingAncestor returns p or its nearest existing parent directory.
func existingAncestor(p string) string {
	for {
		if _, err := os.Stat(p); err == nil {
			return p
		}
		parent := filepath.Dir(p)
		if parent == p {
			return p
		}
		p = parent
	}
}

// overlayInKernel reports whether /proc/filesystems lists overlay.
func overlayInKernel() (bool, error) {
	f, err := os.Open("/proc/filesystems")
	if err != nil {
		return false, errors.Wrap(err, "read /proc/filesystems")
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 0 && fields[len(fields)-1] == "overlay" {
			return true, nil
		}
	}
	return false, errors.Wrap(sc.Err(), "read /proc/filesystems")
}

// probe checks, without creating anything, that overlay2 can run with its
// home under root: the kernel has overlay and root's filesystem is one
// overlay can use as an upper layer. The d_type check that needs a new
// file is done by New.
func probe(root string) error {
	ok, err := overlayInKernel()
	if err != nil {
		return errdefs.Wrapf(driver.ErrPrerequisitesMissing, err, "overlay2: %v", err)
	}
	if !ok {
		return errors.Wrap(driver.ErrNotSupported, "overlay2: the kernel has no overlay filesystem (not in /proc/filesystems; try modprobe overlay)")
	}
	at := existingAncestor(root)
	fsName, err := backingFS(at)
	if err != nil {
		return errdefs.Wrapf(driver.ErrPrerequisitesMissing, err, "overlay2: %v", err)
	}
	switch fsName {
	case "overlayfs", "aufs", "ecryptfs":
		return errors.Wrapf(driver.ErrNotSupported, "overlay2: %s is on %s, which overlay cannot use as an upper layer", at, fsName)
	}
	return nil
}

// kernelParam reads a boolean overlay module parameter: "Y" is true; a
// missing parameter reads as missing.
func kernelParam(name string) (value, present bool) {
	b, err := os.ReadFile(filepath.Join("/sys/module/overlay/parameters", name))
	if err != nil {
		return false, false
	}
	return strings.TrimSpace(string(b)) == "Y", true
}

package loopback

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/thinctl/thinctl/fs"

	"golang.org/x/sys/unix"
)

// Sources of the long-lived users of a block device; variables for tests.
var (
	sysDevBlockDir = "/sys/dev/block"
	mountInfoPath  = "/proc/self/mountinfo"
)

// usersOf describes what keeps block device dev open for good: block
// devices stacked on it (sysfs holders, such as dm-3) and mounts of it in
// this mount namespace. Transient openers are not listed: the kernel does
// not name them.
func usersOf(dev uint64) []string {
	major, minor := unix.Major(dev), unix.Minor(dev)
	var users []string
	holders, _ := readDirNames(filepath.Join(sysDevBlockDir, fmt.Sprintf("%d:%d", major, minor), "holders"))
	for _, h := range holders {
		users = append(users, "held by "+h)
	}
	if b, err := os.ReadFile(mountInfoPath); err == nil {
		for _, m := range mountsOf(string(b), major, minor) {
			users = append(users, "mounted at "+m)
		}
	}
	return users
}

// mountsOf returns the mount points of device major:minor in the text of a
// /proc/<pid>/mountinfo file, quoted when they hold spaces or other
// characters that would break an error message's line.
func mountsOf(mountinfo string, major, minor uint32) []string {
	entries, err := fs.ParseMountInfo(strings.NewReader(mountinfo))
	if err != nil {
		return nil
	}
	var points []string
	for _, e := range entries {
		if e.Major == major && e.Minor == minor {
			p := e.MountPoint
			if strings.ContainsFunc(p, func(r rune) bool { return r <= ' ' || r == '"' || r == 0x7f }) {
				p = strconv.Quote(p)
			}
			points = append(points, p)
		}
	}
	return points
}

package loopback

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

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
// /proc/<pid>/mountinfo file (field 3 is the device, field 5 the mount
// point). Points stay as the kernel escaped them (\040 for a space): they
// only go into error messages, where that keeps them on one line.
func mountsOf(mountinfo string, major, minor uint32) []string {
	want := fmt.Sprintf("%d:%d", major, minor)
	var points []string
	for _, line := range strings.Split(mountinfo, "\n") {
		f := strings.Fields(line)
		if len(f) >= 5 && f[2] == want {
			points = append(points, f[4])
		}
	}
	return points
}

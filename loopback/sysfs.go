package loopback

import (
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/pkg/errors"
)

// Where the kernel shows block devices and their nodes; variables so that
// unit tests can point them at fixtures.
var (
	sysBlockDir = "/sys/block"
	devDir      = "/dev"
)

// loopMajor is the block major number of loop devices (LOOP_MAJOR).
const loopMajor = 7

// parseLoopName returns N for a name "loopN" (N decimal, no sign, no
// leading zeros unless N is 0) and false for anything else, such as
// "loop-control" or "loop0p1".
func parseLoopName(name string) (int, bool) {
	digits, ok := strings.CutPrefix(name, "loop")
	if !ok || digits == "" || len(digits) > 9 || (len(digits) > 1 && digits[0] == '0') {
		return 0, false
	}
	n := 0
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// parseDevNumber parses the content of a sysfs "dev" attribute, "MAJOR:MINOR"
// followed by an optional newline.
func parseDevNumber(s string) (major, minor uint32, err error) {
	s = strings.TrimSuffix(s, "\n")
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		return 0, 0, errors.Errorf("device number %q: want MAJOR:MINOR", s)
	}
	ma, err1 := strconv.ParseUint(a, 10, 32)
	mi, err2 := strconv.ParseUint(b, 10, 32)
	if err1 != nil || err2 != nil {
		return 0, 0, errors.Errorf("device number %q: want MAJOR:MINOR in decimal", s)
	}
	return uint32(ma), uint32(mi), nil
}

// loopIndexes lists the loop devices the kernel has, in increasing order:
// from /sys/block when sysfs is mounted, else from the nodes in /dev. Gaps
// are normal (devices are created and removed on demand), so callers must
// walk this list rather than count up from 0.
func loopIndexes() ([]int, error) {
	names, err := readDirNames(sysBlockDir)
	if err != nil {
		names, err = readDirNames(devDir)
		if err != nil {
			return nil, errors.Wrapf(err, "list loop devices in %s and %s", sysBlockDir, devDir)
		}
	}
	var idx []int
	for _, name := range names {
		if n, ok := parseLoopName(name); ok {
			idx = append(idx, n)
		}
	}
	sort.Ints(idx)
	return idx, nil
}

func readDirNames(dir string) ([]string, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.Readdirnames(-1)
}

// sysDevNumber reads the device number of loopN from sysfs. It falls back to
// 7:N (loop's numbering without partitions) when sysfs cannot tell.
func sysDevNumber(n int) (major, minor uint32) {
	b, err := os.ReadFile(filepath.Join(sysBlockDir, "loop"+strconv.Itoa(n), "dev"))
	if err == nil {
		if ma, mi, err := parseDevNumber(string(b)); err == nil {
			return ma, mi
		}
	}
	return loopMajor, uint32(n)
}

package fs

import (
	"bufio"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"
)

// MountEntry is one line of /proc/<pid>/mountinfo (see proc(5)). Paths are
// returned with the kernel's octal escapes (\040 for a space, \011, \012,
// \134) decoded.
type MountEntry struct {
	ID       int    // unique mount id
	ParentID int    // id of the parent mount
	Major    uint32 // st_dev major of files in this mount
	Minor    uint32 // st_dev minor
	Root     string // path of the directory mounted, inside its filesystem
	// MountPoint is relative to the reading process's root.
	MountPoint string
	Options    string   // per-mount options, e.g. "rw,noatime"
	Optional   []string // optional fields, e.g. "shared:1", "master:2"
	FSType     string   // filesystem type, with any "type.subtype"
	Source     string   // mount source, e.g. "/dev/loop0", or "none"
	// SuperOptions are the per-superblock options.
	SuperOptions string
}

// Dev is the device number (as in stat's st_dev) of files in the mount.
func (e MountEntry) Dev() uint64 { return unix.Mkdev(e.Major, e.Minor) }

// maxMountInfoLine bounds one line (overlay mounts can carry long options).
const maxMountInfoLine = 1 << 20

// ParseMountInfo parses the contents of a /proc/<pid>/mountinfo file.
// A malformed line is an error naming its line number.
func ParseMountInfo(r io.Reader) ([]MountEntry, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), maxMountInfoLine)
	var out []MountEntry
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" {
			continue
		}
		e, err := ParseMountInfoLine(line)
		if err != nil {
			return nil, errors.Wrapf(err, "mountinfo line %d", n)
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, errors.Wrap(err, "read mountinfo")
	}
	return out, nil
}

// ParseMountInfoLine parses one mountinfo line:
//
//	36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//
// Fields are separated by single spaces; the optional fields end at "-".
func ParseMountInfoLine(line string) (MountEntry, error) {
	f := strings.Split(line, " ")
	sep := -1
	for i := 6; i < len(f); i++ {
		if f[i] == "-" {
			sep = i
			break
		}
	}
	if len(f) < 10 || sep < 0 || len(f)-sep-1 < 3 {
		return MountEntry{}, errors.Errorf("malformed mountinfo line %q: want 6 fields, optional fields, \"-\" and 3 more", line)
	}
	var e MountEntry
	var err error
	if e.ID, err = strconv.Atoi(f[0]); err != nil {
		return MountEntry{}, errors.Errorf("malformed mount id %q in mountinfo", f[0])
	}
	if e.ParentID, err = strconv.Atoi(f[1]); err != nil {
		return MountEntry{}, errors.Errorf("malformed parent id %q in mountinfo", f[1])
	}
	maj, min, ok := strings.Cut(f[2], ":")
	ma, err1 := strconv.ParseUint(maj, 10, 32)
	mi, err2 := strconv.ParseUint(min, 10, 32)
	if !ok || err1 != nil || err2 != nil {
		return MountEntry{}, errors.Errorf("malformed major:minor %q in mountinfo", f[2])
	}
	e.Major, e.Minor = uint32(ma), uint32(mi)
	e.Root = unescapeOctal(f[3])
	e.MountPoint = unescapeOctal(f[4])
	e.Options = f[5]
	for _, o := range f[6:sep] {
		if o != "" {
			e.Optional = append(e.Optional, o)
		}
	}
	e.FSType = unescapeOctal(f[sep+1])
	e.Source = unescapeOctal(f[sep+2])
	e.SuperOptions = unescapeOctal(strings.Join(f[sep+3:], " "))
	return e, nil
}

// unescapeOctal decodes the kernel's \ooo escapes; anything else is kept.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) && s[i+1] <= '3' {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// readMountInfo parses /proc/<pid>/mountinfo; pid "self" reads our own.
func readMountInfo(pid string) ([]MountEntry, error) {
	f, err := os.Open("/proc/" + pid + "/mountinfo")
	if err != nil {
		return nil, errors.Wrap(err, "read mount table")
	}
	defer f.Close()
	return ParseMountInfo(f)
}

// Mounts returns this process's mount table (/proc/self/mountinfo).
func Mounts() ([]MountEntry, error) { return readMountInfo("self") }

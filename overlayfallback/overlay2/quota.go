package overlay2

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unsafe"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/driver"
	"github.com/thinctl/thinctl/fs"
)

// Kernel ABI for xfs project quotas (linux/fs.h, linux/quota.h,
// linux/dqblk_xfs.h); x/sys/unix does not carry these.
const (
	fsIocFsGetXattr    = 0x801c581f // _IOR('X', 31, struct fsxattr)
	fsIocFsSetXattr    = 0x401c5820 // _IOW('X', 32, struct fsxattr)
	fsXflagProjInherit = 0x200
	prjQuota           = 2
	qXSetQLim          = 'X'<<8 + 4
	qXGetQuota         = 'X'<<8 + 3
	fsDquotVersion     = 1
	fsProjQuota        = 2
	fsDqBSoft          = 1 << 2
	fsDqBHard          = 1 << 3
	// backingDevName is the block device node for quotactl, made in home.
	backingDevName = "backingFsBlockDev"
	// minProjectID keeps clear of ids an administrator is likely to use.
	minProjectID = 100000
)

// fsxattr is struct fsxattr.
type fsxattr struct {
	Xflags     uint32
	Extsize    uint32
	Nextents   uint32
	Projid     uint32
	Cowextsize uint32
	Pad        [8]byte
}

// fsDiskQuota is struct fs_disk_quota (112 bytes).
type fsDiskQuota struct {
	Version      int8
	Flags        int8
	Fieldmask    uint16
	ID           uint32
	BlkHardlimit uint64
	BlkSoftlimit uint64
	InoHardlimit uint64
	InoSoftlimit uint64
	Bcount       uint64
	Icount       uint64
	Itimer       int32
	Btimer       int32
	Iwarns       uint16
	Bwarns       uint16
	ItimerHi     int8
	BtimerHi     int8
	RtbtimerHi   int8
	Padding2     int8
	RtbHardlimit uint64
	RtbSoftlimit uint64
	Rtbcount     uint64
	Rtbtimer     int32
	Rtbwarns     uint16
	Padding3     int16
	Padding4     [8]byte
}

// quotaCtl sets xfs project quotas on layer directories.
type quotaCtl struct {
	dev    string // block device node for quotactl
	mu     sync.Mutex
	nextID uint32
}

// mountFor returns the mountinfo entry of the mount holding p.
func mountFor(p string) (fs.MountEntry, error) {
	mounts, err := fs.Mounts()
	if err != nil {
		return fs.MountEntry{}, err
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return fs.MountEntry{}, errors.Wrapf(err, "resolve %s", p)
	}
	var best fs.MountEntry
	for _, m := range mounts {
		if (real == m.MountPoint || m.MountPoint == "/" || strings.HasPrefix(real, m.MountPoint+"/")) &&
			len(m.MountPoint) >= len(best.MountPoint) {
			best = m
		}
	}
	if best.MountPoint == "" {
		return best, errors.Errorf("no mount holds %s", p)
	}
	return best, nil
}

// newQuotaCtl returns a quota controller for home, or an error wrapping
// driver.ErrNotSupported that says why sizes cannot be enforced there.
func newQuotaCtl(home, fsName string) (*quotaCtl, error) {
	if fsName != "xfs" {
		return nil, errors.Wrapf(driver.ErrNotSupported,
			"overlay2 size option needs xfs mounted with prjquota; %s is on %s", home, fsName)
	}
	m, err := mountFor(home)
	if err != nil {
		return nil, err
	}
	enforced := false
	for _, o := range strings.Split(m.SuperOptions+","+m.Options, ",") {
		if o == "prjquota" || o == "pquota" {
			enforced = true
		}
	}
	if !enforced {
		return nil, errors.Wrapf(driver.ErrNotSupported,
			"overlay2 size option needs project quotas; mount the xfs at %s with -o prjquota", m.MountPoint)
	}
	var st unix.Stat_t
	if err := unix.Stat(home, &st); err != nil {
		return nil, errors.Wrapf(err, "stat %s", home)
	}
	dev := filepath.Join(home, backingDevName)
	os.Remove(dev)
	if err := unix.Mknod(dev, unix.S_IFBLK|0o600, int(st.Dev)); err != nil {
		return nil, errors.Wrapf(err, "create %s for quotactl", dev)
	}
	q := &quotaCtl{dev: dev, nextID: minProjectID}
	ents, _ := os.ReadDir(home)
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		if id, err := getProjectID(filepath.Join(home, e.Name())); err == nil && id >= q.nextID {
			q.nextID = id + 1
		}
	}
	return q, nil
}

func getProjectID(dir string) (uint32, error) {
	var x fsxattr
	if err := fsxattrIoctl(dir, fsIocFsGetXattr, &x); err != nil {
		return 0, err
	}
	return x.Projid, nil
}

func fsxattrIoctl(dir string, req uintptr, x *fsxattr) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return errors.Wrapf(err, "open %s", dir)
	}
	defer unix.Close(fd)
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(unsafe.Pointer(x))); errno != 0 {
		return errors.Wrapf(errno, "fsxattr ioctl on %s", dir)
	}
	return nil
}

// setLimit gives dir a new project id inherited by everything created in
// it and limits that project to size bytes.
func (q *quotaCtl) setLimit(dir string, size uint64) error {
	q.mu.Lock()
	id := q.nextID
	q.nextID++
	q.mu.Unlock()
	var x fsxattr
	if err := fsxattrIoctl(dir, fsIocFsGetXattr, &x); err != nil {
		return err
	}
	x.Projid = id
	x.Xflags |= fsXflagProjInherit
	if err := fsxattrIoctl(dir, fsIocFsSetXattr, &x); err != nil {
		return err
	}
	blocks := (size + 511) / 512
	dq := fsDiskQuota{
		Version:      fsDquotVersion,
		Flags:        fsProjQuota,
		Fieldmask:    fsDqBSoft | fsDqBHard,
		ID:           id,
		BlkHardlimit: blocks,
		BlkSoftlimit: blocks,
	}
	if err := quotactl(qXSetQLim, q.dev, id, unsafe.Pointer(&dq)); err != nil {
		return errors.Wrapf(err, "set a %d-byte project quota on %s (project %d)", size, dir, id)
	}
	return nil
}

// limit returns the hard block limit in bytes of dir's project.
func (q *quotaCtl) limit(dir string) (uint64, error) {
	id, err := getProjectID(dir)
	if err != nil {
		return 0, err
	}
	var dq fsDiskQuota
	if err := quotactl(qXGetQuota, q.dev, id, unsafe.Pointer(&dq)); err != nil {
		return 0, errors.Wrapf(err, "read the project quota of %s", dir)
	}
	return dq.BlkHardlimit * 512, nil
}

func quotactl(cmd int, dev string, id uint32, addr unsafe.Pointer) error {
	p, err := unix.BytePtrFromString(dev)
	if err != nil {
		return err
	}
	qcmd := uintptr(cmd<<8 | prjQuota)
	if _, _, errno := unix.Syscall6(unix.SYS_QUOTACTL, qcmd, uintptr(unsafe.Pointer(p)), uintptr(id), uintptr(addr), 0, 0); errno != 0 {
		return errno
	}
	return nil
}

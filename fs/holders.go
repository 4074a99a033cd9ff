package fs

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"
)

// HolderKind says why a process keeps a device or mount busy.
type HolderKind string

// The ways a process can hold a device or its mount.
const (
	// HolderMountNamespace: the device is mounted in another mount
	// namespace of which the process is a member.
	HolderMountNamespace HolderKind = "mount-namespace"
	// HolderMountHere: the device is also mounted elsewhere in our own
	// mount namespace (PID is our own process).
	HolderMountHere HolderKind = "mount-here"
	// HolderOpenDevice: the process has the block device open.
	HolderOpenDevice HolderKind = "open-device"
	// HolderOpenFile: the process has a file on the filesystem open.
	HolderOpenFile HolderKind = "open-file"
	// HolderCwd: the process's working directory is on the filesystem.
	HolderCwd HolderKind = "cwd"
	// HolderRoot: the process's root directory is on the filesystem.
	HolderRoot HolderKind = "root"
)

// Holder is a process that keeps a device or mount busy.
type Holder struct {
	PID     int
	Command string     // from /proc/<pid>/comm
	Kind    HolderKind // machine-readable cause
	Reason  string     // human-readable cause, e.g. "has its cwd inside the mount"
	// PIDs lists every process of the mount namespace for
	// HolderMountNamespace (PID is the lowest of them); nil otherwise.
	PIDs []int
}

// Holders lists processes that keep the block device dev (a device number,
// as unix.Mkdev makes) or its mount at mountpoint busy:
//   - a mount of dev in another mount namespace (reported once per
//     namespace, with its processes), or at a place other than mountpoint in
//     our own namespace;
//   - an open file descriptor to the block device or to a file on its
//     filesystem (our own process is skipped);
//   - a cwd or root directory on the filesystem (under mountpoint when dev
//     is 0, i.e. unknown).
//
// Processes that exit during the scan are skipped. mountpoint may be "".
func Holders(dev uint64, mountpoint string) ([]Holder, error) {
	if mountpoint != "" {
		if p, err := canonical(mountpoint); err == nil {
			mountpoint = p
		} else {
			mountpoint = filepath.Clean(mountpoint)
		}
	}
	pids, err := listPIDs()
	if err != nil {
		return nil, err
	}
	self := os.Getpid()
	h := holderScan{dev: dev, mountpoint: mountpoint, self: self, comm: map[int]string{}}
	ownNS, err := mountNamespace(strconv.Itoa(self))
	if err != nil {
		return nil, err
	}
	namespaces := map[uint64][]int{}
	for _, pid := range pids {
		if ns, err := mountNamespace(strconv.Itoa(pid)); err == nil {
			namespaces[ns] = append(namespaces[ns], pid)
		}
		if pid != self {
			h.openFiles(pid)
		}
		h.cwdRoot(pid)
	}
	for ns, members := range namespaces {
		h.namespaceMounts(members, ns == ownNS)
	}
	sort.SliceStable(h.out, func(i, j int) bool {
		if h.out[i].PID != h.out[j].PID {
			return h.out[i].PID < h.out[j].PID
		}
		return h.out[i].Reason < h.out[j].Reason
	})
	return h.out, nil
}

// holderScan accumulates Holders' findings.
type holderScan struct {
	dev        uint64
	mountpoint string
	self       int
	comm       map[int]string
	out        []Holder
}

func (h *holderScan) add(pid int, kind HolderKind, reason string, pids []int) {
	c, ok := h.comm[pid]
	if !ok {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
		c = strings.TrimSpace(string(b))
		h.comm[pid] = c
	}
	h.out = append(h.out, Holder{PID: pid, Command: c, Kind: kind, Reason: reason, PIDs: pids})
}

// namespaceMounts reports mounts of dev in the namespace shared by members
// (sorted pids). In our own namespace the mount at mountpoint is expected.
func (h *holderScan) namespaceMounts(members []int, own bool) {
	if h.dev == 0 {
		return
	}
	sources := make([]string, 0, len(members))
	if own {
		// Our own view: another member's could be relative to a chroot.
		sources = append(sources, "self")
	} else {
		for _, pid := range members {
			sources = append(sources, strconv.Itoa(pid))
		}
	}
	for _, src := range sources {
		mounts, err := readMountInfo(src)
		if err != nil {
			continue // exited, or a kernel thread: try the next member
		}
		for _, m := range mounts {
			if m.Dev() != h.dev {
				continue
			}
			if own {
				if m.MountPoint != h.mountpoint {
					h.add(h.self, HolderMountHere, "has it mounted at "+m.MountPoint+" in this mount namespace", nil)
				}
				continue
			}
			reason := "holds the mount in another mount namespace"
			if len(members) > 1 {
				reason += fmt.Sprintf(" with %d processes", len(members))
			}
			h.add(members[0], HolderMountNamespace, reason, members)
			return
		}
		return
	}
}

// openFiles reports pid's descriptors on the device or its filesystem.
func (h *holderScan) openFiles(pid int) {
	if h.dev == 0 {
		return
	}
	dir := "/proc/" + strconv.Itoa(pid) + "/fd"
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	dev, file := false, false
	for _, e := range ents {
		p := dir + "/" + e.Name()
		if l, err := os.Readlink(p); err != nil || !strings.HasPrefix(l, "/") {
			continue // sockets, pipes, anonymous inodes
		}
		var st unix.Stat_t
		if unix.Stat(p, &st) != nil {
			continue
		}
		if st.Mode&unix.S_IFMT == unix.S_IFBLK && uint64(st.Rdev) == h.dev {
			dev = true
		} else if uint64(st.Dev) == h.dev {
			file = true
		}
	}
	if dev {
		h.add(pid, HolderOpenDevice, "has the device open", nil)
	}
	if file {
		h.add(pid, HolderOpenFile, "has a file open inside the mount", nil)
	}
}

// cwdRoot reports pid's working and root directories on the filesystem.
func (h *holderScan) cwdRoot(pid int) {
	base := "/proc/" + strconv.Itoa(pid) + "/"
	for _, c := range []struct {
		link   string
		kind   HolderKind
		reason string
	}{
		{"cwd", HolderCwd, "has its cwd inside the mount"},
		{"root", HolderRoot, "has its root inside the mount"},
	} {
		if h.onFilesystem(base + c.link) {
			h.add(pid, c.kind, c.reason, nil)
		}
	}
}

// onFilesystem reports whether the directory link (a /proc magic link) is on
// dev's filesystem. The device number decides (it also catches directories
// in detached mounts and in other namespaces); the path under mountpoint is
// only consulted when no device number was given.
func (h *holderScan) onFilesystem(link string) bool {
	if h.dev != 0 {
		var st unix.Stat_t
		return unix.Stat(link, &st) == nil && uint64(st.Dev) == h.dev
	}
	if h.mountpoint == "" {
		return false
	}
	l, err := os.Readlink(link)
	return err == nil && (l == h.mountpoint || strings.HasPrefix(l, h.mountpoint+"/"))
}

// listPIDs returns the numeric entries of /proc in ascending order.
func listPIDs() ([]int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, errors.Wrap(err, "list processes")
	}
	var pids []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	sort.Ints(pids)
	return pids, nil
}

// mountNamespace returns the inode number of pid's mount namespace.
func mountNamespace(pid string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/"+pid+"/ns/mnt", &st); err != nil {
		return 0, errors.Wrapf(err, "mount namespace of pid %s", pid)
	}
	return st.Ino, nil
}

// maxFormatted caps how many holders FormatHolders spells out.
const maxFormatted = 5

// FormatHolders summarises holders on one line for an error message, e.g.
// "pid 1234 (sleep) has its cwd inside the mount; pid 99 (unshare) holds the
// mount in another mount namespace". It returns "" for no holders.
func FormatHolders(hs []Holder) string {
	var parts []string
	for i, x := range hs {
		if i == maxFormatted {
			parts = append(parts, fmt.Sprintf("and %d more", len(hs)-i))
			break
		}
		s := "pid " + strconv.Itoa(x.PID)
		if x.Command != "" {
			s += " (" + x.Command + ")"
		}
		parts = append(parts, s+" "+x.Reason)
	}
	return strings.Join(parts, "; ")
}

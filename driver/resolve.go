package driver

import (
	"io"
	"os"
	"path"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"
)

// Paths inside a layer being written are resolved through file
// descriptors, never as strings joined to the layer's path: the layer
// root is opened once with O_NOFOLLOW, and every later lookup is relative
// to that descriptor with symlinks resolved as if the root were "/"
// (openat2's RESOLVE_IN_ROOT). An archive's symlink can therefore lead
// anywhere inside the layer, and nowhere outside it.

// openLayerRoot opens the directory root without following a symlink at
// its last component; anything but a real directory is refused
// (ErrBadLayerRoot, as every reader of a layer refuses it).
func openLayerRoot(root string) (int, error) {
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
			return -1, CheckLayerRoot(root)
		}
		return -1, errors.Wrapf(err, "open layer root %s", root)
	}
	return fd, nil
}

// resolveFlags keep a lookup inside the layer: absolute symlinks and ".."
// stop at the root, /proc-style magic links are refused.
const resolveFlags = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS

// forceUserspaceResolve makes openat2Or take the fallback path that
// kernels without openat2 (before 5.6, or where seccomp hides it) use;
// tests set it to prove both paths.
var forceUserspaceResolve = false

// noOpenat2 is set once openat2 failed with ENOSYS (no such system call)
// or EPERM (a seccomp filter older than it refusing it), so later lookups
// go straight to the fallback.
var noOpenat2 atomic.Bool

// openInRoot opens rel (slash-separated, cleaned, relative) inside the
// layer whose root is open as rootfd, with symlinks resolved inside the
// root. flags are open(2) flags; O_NOFOLLOW applies to the last component.
func openInRoot(rootfd int, rel string, flags int) (int, error) {
	flags |= unix.O_CLOEXEC
	return openat2Or(rootfd, rel, &unix.OpenHow{Flags: uint64(flags), Resolve: resolveFlags}, openInRootUserspace)
}

// openat2Or opens rel from dirfd with openat2 and how, or, where the
// kernel has no openat2 (before 5.6) or a seccomp filter older than it
// refuses it (EPERM), with fallback, which must keep how's promise in user
// space. The first such refusal is remembered. EAGAIN (a rename elsewhere
// raced the lookup) and EINTR are tried again a bounded number of times.
func openat2Or(dirfd int, rel string, how *unix.OpenHow, fallback func(dirfd int, rel string, flags int) (int, error)) (int, error) {
	if !forceUserspaceResolve && !noOpenat2.Load() {
		fd, err := unix.Openat2(dirfd, rel, how)
		for i := 0; i < 64 && (errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR)); i++ {
			fd, err = unix.Openat2(dirfd, rel, how)
		}
		if !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EPERM) {
			return fd, err
		}
		noOpenat2.Store(true)
	}
	return fallback(dirfd, rel, int(how.Flags))
}

// maxSymlinks bounds the symlinks one lookup follows, as the kernel's 40.
const maxSymlinks = 40

// openInRootUserspace is RESOLVE_IN_ROOT done by hand: one component at a
// time with openat(O_NOFOLLOW) from a directory descriptor, a symlink's
// target read and spliced into what is left of the path (an absolute one
// restarting at the root), ".." never above the root.
func openInRootUserspace(rootfd int, rel string, flags int) (int, error) {
	todo := splitPath(rel)
	var stack []int // descriptors of the directories walked, root excluded
	cur := func() int {
		if len(stack) == 0 {
			return rootfd
		}
		return stack[len(stack)-1]
	}
	defer func() {
		for _, fd := range stack {
			unix.Close(fd)
		}
	}()
	links := 0
	for len(todo) > 0 {
		name := todo[0]
		todo = todo[1:]
		switch name {
		case ".":
			continue
		case "..":
			if len(stack) > 0 {
				unix.Close(stack[len(stack)-1])
				stack = stack[:len(stack)-1]
			}
			continue
		}
		last := len(todo) == 0
		var st unix.Stat_t
		if err := unix.Fstatat(cur(), name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return -1, err
		}
		if st.Mode&unix.S_IFMT == unix.S_IFLNK {
			if last && flags&unix.O_NOFOLLOW != 0 {
				return -1, unix.ELOOP
			}
			if links++; links > maxSymlinks {
				return -1, unix.ELOOP
			}
			target, err := readlinkAt(cur(), name)
			if err != nil {
				return -1, err
			}
			if strings.HasPrefix(target, "/") {
				for _, fd := range stack {
					unix.Close(fd)
				}
				stack = nil
			}
			todo = append(splitPath(target), todo...)
			continue
		}
		if last {
			return unix.Openat(cur(), name, flags|unix.O_NOFOLLOW, 0)
		}
		fd, err := unix.Openat(cur(), name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, err
		}
		stack = append(stack, fd)
	}
	// rel named the root itself (".", or a chain leading back to it).
	return unix.Openat(rootfd, ".", flags&^unix.O_NOFOLLOW, 0)
}

func splitPath(p string) []string {
	var parts []string
	for _, s := range strings.Split(p, "/") {
		if s != "" {
			parts = append(parts, s)
		}
	}
	return parts
}

// readlinkAt reads the symlink name in the directory dirfd.
func readlinkAt(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
		if size > unix.PathMax {
			return "", unix.ENAMETOOLONG
		}
	}
}

// parentDir opens the directory that holds rel's last component, resolved
// inside the root, creating missing directories (0755, root-owned) on the
// way. A component that exists but is neither a directory nor a symlink
// to one is an error naming it.
func parentDir(rootfd int, rel string) (int, error) {
	dir := path.Dir(rel)
	const dirFlags = unix.O_RDONLY | unix.O_DIRECTORY
	fd, err := openInRoot(rootfd, dir, dirFlags)
	if err == nil || !errors.Is(err, unix.ENOENT) {
		return fd, describeParentErr(err, rel, dir)
	}
	// Some directory is missing: walk down, making each one that is.
	fd, err = unix.Dup(rootfd)
	if err != nil {
		return -1, err
	}
	parts := strings.Split(dir, "/")
	for i, name := range parts {
		prefix := strings.Join(parts[:i+1], "/")
		next, err := openInRoot(rootfd, prefix, dirFlags)
		if errors.Is(err, unix.ENOENT) {
			// fd is prefix's parent, resolved; name may still be a
			// dangling symlink, which mkdirat refuses with EEXIST.
			if merr := unix.Mkdirat(fd, name, 0o755); merr != nil {
				unix.Close(fd)
				if errors.Is(merr, unix.EEXIST) {
					return -1, errors.Errorf("tar entry %s would be written through the symlink %s, which leads to nothing inside the layer (symlinks resolve inside it); refusing", rel, prefix)
				}
				return -1, errors.Wrapf(merr, "create directory %s for tar entry %s", prefix, rel)
			}
			next, err = openInRoot(rootfd, prefix, dirFlags)
		}
		unix.Close(fd)
		if err != nil {
			return -1, describeParentErr(err, rel, prefix)
		}
		fd = next
	}
	return fd, nil
}

func describeParentErr(err error, rel, dir string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.ENOTDIR):
		return errors.Errorf("tar entry %s needs %s to be a directory, but it is not", rel, dir)
	case errors.Is(err, unix.ELOOP):
		return errors.Errorf("tar entry %s: %s is a symlink loop", rel, dir)
	case errors.Is(err, unix.EXDEV):
		return errors.Errorf("tar entry %s: %s goes through a magic link", rel, dir)
	}
	return errors.Wrapf(err, "open the directory %s for tar entry %s", dir, rel)
}

// RemoveAllAt removes name, an entry of the directory open as dirfd, and
// everything below it, never following a symlink: a symlink is removed
// itself, and a directory is emptied through descriptors opened with
// O_NOFOLLOW. A missing name is not an error.
func RemoveAllAt(dirfd int, name string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EPERM) {
		return errors.Wrapf(err, "remove %s", name)
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return errors.Wrapf(err, "open %s to remove it", name)
	}
	err = emptyDir(fd, nil)
	unix.Close(fd)
	if err != nil {
		return errors.Wrapf(err, "remove %s", name)
	}
	if err := unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR); err != nil && !errors.Is(err, unix.ENOENT) {
		return errors.Wrapf(err, "remove %s", name)
	}
	return nil
}

// emptyDir removes every entry of the directory open as fd for which keep
// (when not nil) is false.
func emptyDir(fd int, keep func(name string) bool) error {
	names, err := readDirNames(fd)
	if err != nil {
		return err
	}
	for _, n := range names {
		if keep != nil && keep(n) {
			continue
		}
		if err := RemoveAllAt(fd, n); err != nil {
			return err
		}
	}
	return nil
}

// readDirNames lists the directory open as fd (without "." and "..")
// through a duplicate descriptor, leaving fd's offset alone.
func readDirNames(fd int) ([]string, error) {
	dup, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(dup), "dir")
	defer f.Close()
	var names []string
	for {
		batch, err := f.Readdirnames(1024)
		names = append(names, batch...)
		if err == io.EOF {
			return names, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// fdPath names the file open as fd, or name in the directory open as fd
// when name is not empty, through /proc/self/fd: a path whose walk uses
// the descriptor instead of resolving names from "/" again. Calls that do
// not follow a last symlink (lsetxattr) then never leave that directory.
func fdPath(fd int, name string) string {
	p := "/proc/self/fd/" + strconv.Itoa(fd)
	if name != "" {
		p += "/" + name
	}
	return p
}

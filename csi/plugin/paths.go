package plugin

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/thinctl/thinctl/fs"
)

const maxPathLen = 4096

// resolveFlags make openat2 stay beneath the path root and follow no
// symbolic link at all, so that no component of a request's path (which
// a pod's owner may be able to write) can lead a mount elsewhere.
const resolveFlags = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS

// checkPath refuses a path that is empty, overlong, relative, not clean,
// holds a NUL or is not strictly beneath the path root; it returns the
// path relative to the root.
func (p *Plugin) checkPath(field, path string) (string, error) {
	switch {
	case path == "":
		return "", status.Errorf(codes.InvalidArgument, "%s is empty", field)
	case len(path) > maxPathLen:
		return "", status.Errorf(codes.InvalidArgument, "%s is %d bytes long: the limit is %d", field, len(path), maxPathLen)
	case strings.IndexByte(path, 0) >= 0:
		return "", status.Errorf(codes.InvalidArgument, "%s contains a NUL byte", field)
	case !filepath.IsAbs(path) || filepath.Clean(path) != path:
		return "", status.Errorf(codes.InvalidArgument, "%s %.200q is not an absolute, clean path", field, path)
	case !strings.HasPrefix(path, p.cfg.PathRoot+"/"):
		return "", status.Errorf(codes.InvalidArgument, "%s %.200q is not beneath %s, where this driver mounts volumes (--path-root)", field, path, p.cfg.PathRoot)
	}
	return path[len(p.cfg.PathRoot)+1:], nil
}

// openBeneath opens rel beneath the path root without following any
// symbolic link; mode is for O_CREAT.
func (p *Plugin) openBeneath(field, rel string, flags int, mode uint32) (*os.File, error) {
	root, err := unix.Open(p.cfg.PathRoot, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "open the path root %s: %v", p.cfg.PathRoot, err)
	}
	defer unix.Close(root)
	fd, err := unix.Openat2(root, rel, &unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Mode: uint64(mode), Resolve: resolveFlags})
	switch err {
	case nil:
		return os.NewFile(uintptr(fd), filepath.Join(p.cfg.PathRoot, rel)), nil
	case unix.ENOENT:
		return nil, status.Errorf(codes.NotFound, "%s %s does not exist", field, filepath.Join(p.cfg.PathRoot, rel))
	case unix.ELOOP, unix.EXDEV:
		return nil, status.Errorf(codes.InvalidArgument, "%s %s passes through a symbolic link: give the real path", field, filepath.Join(p.cfg.PathRoot, rel))
	case unix.ENOTDIR:
		return nil, status.Errorf(codes.InvalidArgument, "%s %s: a component is not a directory", field, filepath.Join(p.cfg.PathRoot, rel))
	}
	return nil, status.Errorf(codes.Internal, "open %s %s: %v", field, filepath.Join(p.cfg.PathRoot, rel), err)
}

// fdPath names an open file for mount(2): the kernel resolves it to the
// very file that was opened, whatever the path now leads to.
func fdPath(f *os.File) string { return "/proc/self/fd/" + strconv.Itoa(int(f.Fd())) }

// makeTarget creates rel (a directory, or an empty file when file is set)
// beneath the root unless it exists, and returns it opened O_PATH.
func (p *Plugin) makeTarget(field, rel string, file bool) (*os.File, error) {
	flags := unix.O_PATH | unix.O_DIRECTORY
	if file {
		flags = unix.O_PATH
	}
	f, err := p.openBeneath(field, rel, flags, 0)
	if status.Code(err) != codes.NotFound {
		return f, err
	}
	parentRel, base := filepath.Split(rel)
	parent, err := p.openBeneath(field+"'s parent", filepath.Clean(parentRel), unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, err
	}
	defer parent.Close()
	if file {
		fd, err := unix.Openat(int(parent.Fd()), base, unix.O_CREAT|unix.O_EXCL|unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil && err != unix.EEXIST {
			return nil, status.Errorf(codes.Internal, "create %s %s: %v", field, filepath.Join(p.cfg.PathRoot, rel), err)
		}
		if err == nil {
			unix.Close(fd)
		}
	} else if err := unix.Mkdirat(int(parent.Fd()), base, 0o750); err != nil && err != unix.EEXIST {
		return nil, status.Errorf(codes.Internal, "create %s %s: %v", field, filepath.Join(p.cfg.PathRoot, rel), err)
	}
	return p.openBeneath(field, rel, flags, 0)
}

// removeTarget removes what makeTarget made (an empty directory or a
// file); a missing one is fine.
func (p *Plugin) removeTarget(field, rel string) error {
	parentRel, base := filepath.Split(rel)
	parent, err := p.openBeneath(field+"'s parent", filepath.Clean(parentRel), unix.O_PATH|unix.O_DIRECTORY, 0)
	if status.Code(err) == codes.NotFound {
		return nil
	} else if err != nil {
		return err
	}
	defer parent.Close()
	err = unix.Unlinkat(int(parent.Fd()), base, unix.AT_REMOVEDIR)
	if err == unix.ENOTDIR {
		err = unix.Unlinkat(int(parent.Fd()), base, 0)
	}
	if err != nil && err != unix.ENOENT {
		return status.Errorf(codes.Internal, "remove %s %s: %v", field, filepath.Join(p.cfg.PathRoot, rel), err)
	}
	return nil
}

// mountAt returns the topmost mount whose mount point is path (a path
// checked to hold no symbolic link), or false.
func mountAt(path string) (fs.MountEntry, bool, error) {
	ms, err := fs.Mounts()
	if err != nil {
		return fs.MountEntry{}, false, status.Errorf(codes.Internal, "read the mount table: %v", err)
	}
	var top fs.MountEntry
	found := false
	for _, m := range ms {
		if m.MountPoint == path {
			top, found = m, true
		}
	}
	return top, found, nil
}

// unmountAll unmounts every mount stacked on path (checked beneath the
// root first, so that no symbolic link leads the unmount elsewhere).
func (p *Plugin) unmountAll(field, rel string) error {
	f, err := p.openBeneath(field, rel, unix.O_PATH, 0)
	if status.Code(err) == codes.NotFound {
		return nil
	} else if err != nil {
		return err
	}
	f.Close()
	path := filepath.Join(p.cfg.PathRoot, rel)
	for range 16 {
		_, mounted, err := mountAt(path)
		if err != nil || !mounted {
			return err
		}
		if err := unix.Unmount(path, unix.UMOUNT_NOFOLLOW); err != nil && err != unix.EINVAL {
			return status.Errorf(codes.Internal, "unmount %s %s: %v", field, path, err)
		}
	}
	return status.Errorf(codes.Internal, "%s %s still has mounts after 16 unmounts", field, path)
}

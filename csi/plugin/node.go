package plugin

import (
	"context"
	"errors"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/thinctl/thinctl/fs"
	"github.com/thinctl/thinctl/thinpool"
)

// NodeGetInfo names the node and its topology segment.
func (p *Plugin) NodeGetInfo(context.Context, *csi.NodeGetInfoRequest) (*csi.NodeGetInfoResponse, error) {
	return &csi.NodeGetInfoResponse{NodeId: p.cfg.NodeID, AccessibleTopology: p.topology()}, nil
}

// NodeGetCapabilities lists what the node service does.
func (p *Plugin) NodeGetCapabilities(context.Context, *csi.NodeGetCapabilitiesRequest) (*csi.NodeGetCapabilitiesResponse, error) {
	var caps []*csi.NodeServiceCapability
	for _, t := range []csi.NodeServiceCapability_RPC_Type{
		csi.NodeServiceCapability_RPC_STAGE_UNSTAGE_VOLUME,
		csi.NodeServiceCapability_RPC_GET_VOLUME_STATS,
		csi.NodeServiceCapability_RPC_SINGLE_NODE_MULTI_WRITER,
		csi.NodeServiceCapability_RPC_GET_VOLUME_HEALTH,
		csi.NodeServiceCapability_RPC_GET_STORAGE_HEALTH,
		csi.NodeServiceCapability_RPC_EXPAND_VOLUME,
	} {
		caps = append(caps, &csi.NodeServiceCapability{Type: &csi.NodeServiceCapability_Rpc{
			Rpc: &csi.NodeServiceCapability_RPC{Type: t}}})
	}
	return &csi.NodeGetCapabilitiesResponse{Capabilities: caps}, nil
}

// nodeVolume checks the id and capability of a node request and returns
// the volume and what the capability asks for.
func (p *Plugin) nodeVolume(id string, c *csi.VolumeCapability) (thinpool.Device, volumeKind, error) {
	if id == "" {
		return thinpool.Device{}, volumeKind{}, status.Error(codes.InvalidArgument, "volume id is empty")
	}
	if c == nil {
		return thinpool.Device{}, volumeKind{}, status.Error(codes.InvalidArgument, "volume capability is missing")
	}
	d, err := p.device(id, volumePrefix, kindVolume)
	if err != nil {
		return d, volumeKind{}, err
	}
	k, err := checkCapability(c, fs.Type(d.Labels[labelFS]))
	if err != nil {
		return d, k, err
	}
	if k.access != d.Labels[labelAccess] || k.access == accessMount && string(k.fs) != d.Labels[labelFS] {
		return d, k, status.Errorf(codes.InvalidArgument, "volume %s is %s, and the capability asks for %s", id,
			describe(d.Labels[labelAccess], d.Labels[labelFS]), describe(k.access, string(k.fs)))
	}
	if d.Labels[labelState] != stateReady {
		return d, k, status.Errorf(codes.FailedPrecondition, "volume %s is still being created: CreateVolume it again first", id)
	}
	return d, k, nil
}

// devNumber is the device number of the block device at path.
func devNumber(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, status.Errorf(codes.Internal, "stat %s: %v", path, err)
	}
	return st.Rdev, nil
}

// NodeStageVolume activates the volume's device and, for a filesystem
// volume, mounts it at the staging path (once per node).
func (p *Plugin) NodeStageVolume(ctx context.Context, req *csi.NodeStageVolumeRequest) (*csi.NodeStageVolumeResponse, error) {
	rel, err := p.checkPath("staging target path", req.GetStagingTargetPath())
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	d, k, err := p.nodeVolume(req.GetVolumeId(), req.GetVolumeCapability())
	if err != nil {
		return nil, err
	}
	dir, err := p.openBeneath("staging target path", rel, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	dev, err := p.cfg.Pool.Activate(ctx, d.ID)
	if err != nil {
		return nil, grpcError(err, "activate volume %s", d.ID)
	}
	if k.access == accessBlock {
		return &csi.NodeStageVolumeResponse{}, nil
	}
	num, err := devNumber(dev)
	if err != nil {
		return nil, err
	}
	if m, mounted, err := mountAt(req.GetStagingTargetPath()); err != nil {
		return nil, err
	} else if mounted {
		if m.Dev() != num {
			return nil, status.Errorf(codes.AlreadyExists, "staging target path %s holds another mount (%s)", req.GetStagingTargetPath(), m.Source)
		}
		return &csi.NodeStageVolumeResponse{}, nil
	}
	opts := fs.MountOptions{Options: req.GetVolumeCapability().GetMount().GetMountFlags()}
	if err := fs.Mount(dev, fdPath(dir), k.fs, opts); err != nil {
		return nil, grpcError(err, "mount volume %s at %s", d.ID, req.GetStagingTargetPath())
	}
	if k.fs == fs.XFS {
		// The pool grows an xfs filesystem only in its own Mount; a
		// volume made bigger than its base or source grows here.
		if err := fs.Grow(ctx, dev, req.GetStagingTargetPath(), fs.XFS); err != nil {
			_ = unix.Unmount(req.GetStagingTargetPath(), unix.UMOUNT_NOFOLLOW)
			return nil, grpcError(err, "grow the filesystem of volume %s", d.ID)
		}
	}
	return &csi.NodeStageVolumeResponse{}, nil
}

// NodeUnstageVolume unmounts the staging path and deactivates the device.
func (p *Plugin) NodeUnstageVolume(ctx context.Context, req *csi.NodeUnstageVolumeRequest) (*csi.NodeUnstageVolumeResponse, error) {
	err := p.unmountThen(req.GetVolumeId(), "staging target path", req.GetStagingTargetPath(), func(string) error {
		d, err := p.device(req.GetVolumeId(), volumePrefix, kindVolume)
		if status.Code(err) == codes.NotFound {
			return nil // deleted meanwhile: the kernel removes it on last close
		} else if err != nil {
			return err
		}
		err = p.cfg.Pool.Deactivate(ctx, d.ID)
		switch {
		case err == nil, errors.Is(err, thinpool.ErrDeviceNotFound):
			return nil
		case errors.Is(err, thinpool.ErrBusy):
			return status.Errorf(codes.FailedPrecondition, "volume %s is still held (published somewhere, or open): unpublish it first (%v)", d.ID, err)
		}
		return grpcError(err, "deactivate volume %s", d.ID)
	})
	if err != nil {
		return nil, err
	}
	return &csi.NodeUnstageVolumeResponse{}, nil
}

// unmountThen checks the volume id and path of an unstage or unpublish
// and, holding the lock, unmounts everything at the path and runs then
// with the path relative to the root.
func (p *Plugin) unmountThen(volumeID, field, path string, then func(rel string) error) error {
	if volumeID == "" {
		return status.Error(codes.InvalidArgument, "volume id is empty")
	}
	rel, err := p.checkPath(field, path)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.unmountAll(field, rel); err != nil {
		return err
	}
	return then(rel)
}

// NodePublishVolume bind-mounts the staged filesystem (or, for a block
// volume, the device node) at the target path, read-only when asked.
func (p *Plugin) NodePublishVolume(ctx context.Context, req *csi.NodePublishVolumeRequest) (*csi.NodePublishVolumeResponse, error) {
	rel, err := p.checkPath("target path", req.GetTargetPath())
	if err != nil {
		return nil, err
	}
	stagingRel, err := p.checkPath("staging target path", req.GetStagingTargetPath())
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	d, k, err := p.nodeVolume(req.GetVolumeId(), req.GetVolumeCapability())
	if err != nil {
		return nil, err
	}
	readOnly := req.GetReadonly() ||
		req.GetVolumeCapability().GetAccessMode().GetMode() == csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY
	// What is to be bound, and its device number.
	var src string
	var num uint64
	if k.access == accessBlock {
		if !d.Active {
			return nil, status.Errorf(codes.FailedPrecondition, "volume %s is not staged on this node: NodeStageVolume it first", d.ID)
		}
		src = d.DevicePath
		if num, err = devNumber(src); err != nil {
			return nil, err
		}
	} else {
		m, mounted, err := mountAt(req.GetStagingTargetPath())
		if err != nil {
			return nil, err
		}
		if !mounted || !d.Active {
			return nil, status.Errorf(codes.FailedPrecondition, "volume %s is not staged at %s: NodeStageVolume it first", d.ID, req.GetStagingTargetPath())
		}
		if num, err = devNumber(d.DevicePath); err != nil {
			return nil, err
		}
		if m.Dev() != num {
			return nil, status.Errorf(codes.FailedPrecondition, "staging target path %s holds another volume's mount", req.GetStagingTargetPath())
		}
	}
	if m, mounted, err := mountAt(req.GetTargetPath()); err != nil {
		return nil, err
	} else if mounted {
		ro := slices.Contains(strings.Split(m.Options, ","), "ro")
		if !p.sameDevice(m, num, k) || ro != readOnly {
			return nil, status.Errorf(codes.AlreadyExists, "target path %s is already a mount of something else (or with another read-only setting)", req.GetTargetPath())
		}
		return &csi.NodePublishVolumeResponse{}, nil
	}
	if req.GetVolumeCapability().GetAccessMode().GetMode() == csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER {
		others, err := shownAt(d, num, k)
		if err != nil {
			return nil, err
		}
		others = slices.DeleteFunc(others, func(mp string) bool { return mp == req.GetStagingTargetPath() })
		if len(others) > 0 {
			return nil, status.Errorf(codes.FailedPrecondition, "volume %s is SINGLE_NODE_SINGLE_WRITER and already published at %s", d.ID, others[0])
		}
	}
	target, err := p.makeTarget("target path", rel, k.access == accessBlock)
	if err != nil {
		return nil, err
	}
	defer target.Close()
	var source *os.File
	if k.access == accessBlock {
		source, err = os.OpenFile(src, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, status.Errorf(codes.Internal, "open %s: %v", src, err)
		}
	} else if source, err = p.openBeneath("staging target path", stagingRel, unix.O_PATH|unix.O_DIRECTORY, 0); err != nil {
		return nil, err
	}
	defer source.Close()
	if err := unix.Mount(fdPath(source), fdPath(target), "", unix.MS_BIND, ""); err != nil {
		return nil, status.Errorf(codes.Internal, "bind %s at %s: %v", source.Name(), req.GetTargetPath(), err)
	}
	if readOnly {
		// A bind mount becomes read-only by a remount of the new mount,
		// reached through a fresh open of the target.
		err := func() error {
			t, err := p.openBeneath("target path", rel, unix.O_PATH, 0)
			if err != nil {
				return err
			}
			defer t.Close()
			return unix.Mount("", fdPath(t), "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, "")
		}()
		if err != nil {
			_ = unix.Unmount(req.GetTargetPath(), unix.UMOUNT_NOFOLLOW)
			return nil, status.Errorf(codes.Internal, "make %s read-only: %v", req.GetTargetPath(), err)
		}
	}
	return &csi.NodePublishVolumeResponse{}, nil
}

// sameDevice reports whether mount m shows the volume: the filesystem on
// device num, or for a block volume, its device node bound there.
func (p *Plugin) sameDevice(m fs.MountEntry, num uint64, k volumeKind) bool {
	if k.access == accessMount {
		return m.Dev() == num
	}
	var st unix.Stat_t
	return unix.Stat(m.MountPoint, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFBLK && st.Rdev == num
}

// shownAt lists the mount points that show volume d (device number num).
func shownAt(d thinpool.Device, num uint64, k volumeKind) ([]string, error) {
	ms, err := fs.Mounts()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "read the mount table: %v", err)
	}
	var out []string
	for _, m := range ms {
		if k.access == accessMount && m.Dev() == num ||
			k.access == accessBlock && d.DevicePath != "" && path.Base(m.Root) == path.Base(d.DevicePath) {
			out = append(out, m.MountPoint)
		}
	}
	return out, nil
}

// NodeUnpublishVolume unmounts the target path and removes it.
func (p *Plugin) NodeUnpublishVolume(ctx context.Context, req *csi.NodeUnpublishVolumeRequest) (*csi.NodeUnpublishVolumeResponse, error) {
	err := p.unmountThen(req.GetVolumeId(), "target path", req.GetTargetPath(), func(rel string) error {
		return p.removeTarget("target path", rel)
	})
	if err != nil {
		return nil, err
	}
	return &csi.NodeUnpublishVolumeResponse{}, nil
}

// NodeGetVolumeStats reports the bytes and inodes of a published or staged
// filesystem, or a block volume's size. (CSI 1.14 moved the volume's
// condition to NodeGetVolumeHealth.)
func (p *Plugin) NodeGetVolumeStats(ctx context.Context, req *csi.NodeGetVolumeStatsRequest) (*csi.NodeGetVolumeStatsResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume id is empty")
	}
	if req.GetVolumePath() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume path is empty")
	}
	d, err := p.device(req.GetVolumeId(), volumePrefix, kindVolume)
	if err != nil {
		return nil, err
	}
	rel, err := p.checkPath("volume path", req.GetVolumePath())
	if err != nil {
		// Nothing is mounted anywhere but beneath the root.
		return nil, status.Errorf(codes.NotFound, "volume %s is not at %.200q: %s", d.ID, req.GetVolumePath(), status.Convert(err).Message())
	}
	f, err := p.openBeneath("volume path", rel, unix.O_PATH, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m, mounted, err := mountAt(req.GetVolumePath())
	if err != nil {
		return nil, err
	}
	if !mounted {
		return nil, status.Errorf(codes.NotFound, "volume %s is not published or staged at %s", d.ID, req.GetVolumePath())
	}
	if d.Labels[labelAccess] == accessBlock {
		return &csi.NodeGetVolumeStatsResponse{Usage: []*csi.VolumeUsage{
			{Unit: csi.VolumeUsage_BYTES, Total: int64(d.Size)},
		}}, nil
	}
	if d.DevicePath == "" {
		return nil, status.Errorf(codes.NotFound, "volume %s is not active on this node", d.ID)
	}
	num, err := devNumber(d.DevicePath)
	if err != nil {
		return nil, err
	}
	if m.Dev() != num {
		return nil, status.Errorf(codes.NotFound, "%s is not a mount of volume %s", req.GetVolumePath(), d.ID)
	}
	var sf unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &sf); err != nil {
		// O_PATH descriptors take fstatfs since Linux 3.12.
		return nil, status.Errorf(codes.Internal, "statfs %s: %v", req.GetVolumePath(), err)
	}
	bs := int64(sf.Bsize)
	return &csi.NodeGetVolumeStatsResponse{Usage: []*csi.VolumeUsage{
		{Unit: csi.VolumeUsage_BYTES, Total: int64(sf.Blocks) * bs, Available: int64(sf.Bavail) * bs, Used: int64(sf.Blocks-sf.Bfree) * bs},
		{Unit: csi.VolumeUsage_INODES, Total: int64(sf.Files), Available: int64(sf.Ffree), Used: int64(sf.Files - sf.Ffree)},
	}}, nil
}

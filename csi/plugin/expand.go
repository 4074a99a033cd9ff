package plugin

import (
	"context"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/thinctl/thinctl/thinpool"
)

// Expansion. The controller grows the volume's thin device (its record,
// and its table when it is active: the controller and the node are one
// process on one pool). A filesystem volume's filesystem is grown by the
// node: NodeExpandVolume grows a staged one online (resize2fs, xfs_growfs);
// one that is not staged grows when it is next staged (the pool grows an
// ext4 on activation, NodeStageVolume an xfs). A raw block volume is only
// its device: nothing is left for the node.

// ControllerExpandVolume grows a volume to at least the required bytes.
// A volume already that big is left as it is (a retry); a limit under its
// size is OutOfRange, as is a size the pool cannot hold; a pool under its
// minimum free space is ResourceExhausted.
func (p *Plugin) ControllerExpandVolume(ctx context.Context, req *csi.ControllerExpandVolumeRequest) (*csi.ControllerExpandVolumeResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume id is empty")
	}
	cr := req.GetCapacityRange()
	if cr == nil {
		return nil, status.Error(codes.InvalidArgument, "capacity range is missing")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	d, err := p.device(req.GetVolumeId(), volumePrefix, kindVolume)
	if err != nil {
		return nil, err
	}
	if d.Labels[labelState] != stateReady {
		return nil, status.Errorf(codes.FailedPrecondition, "volume %s is still being created: CreateVolume it again first", d.ID)
	}
	if lim := cr.GetLimitBytes(); lim > 0 && uint64(lim) < d.Size {
		return nil, status.Errorf(codes.OutOfRange, "volume %s has %d bytes, more than the limit %d: volumes do not shrink", d.ID, d.Size, lim)
	}
	block := d.Labels[labelAccess] == accessBlock
	size := d.Size
	if cr.GetRequiredBytes() < 0 || uint64(cr.GetRequiredBytes()) > d.Size {
		if size, err = volumeSize(cr, d.Size); err != nil {
			return nil, err
		}
		if err := p.cfg.Pool.Resize(ctx, d.ID, size, thinpool.ResizeOptions{Raw: block}); err != nil {
			return nil, grpcError(err, "expand volume %s to %d bytes", d.ID, size)
		}
	}
	return &csi.ControllerExpandVolumeResponse{CapacityBytes: int64(size), NodeExpansionRequired: !block}, nil
}

// NodeExpandVolume grows the filesystem of a volume staged or published at
// the volume path to fill its device; for a block volume there is nothing
// to grow. The path must show the volume (NotFound otherwise); nothing but
// the volume's own mounts is touched.
func (p *Plugin) NodeExpandVolume(ctx context.Context, req *csi.NodeExpandVolumeRequest) (*csi.NodeExpandVolumeResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume id is empty")
	}
	if req.GetVolumePath() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume path is empty")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	d, err := p.device(req.GetVolumeId(), volumePrefix, kindVolume)
	if err != nil {
		return nil, err
	}
	if need := req.GetCapacityRange().GetRequiredBytes(); need > 0 && uint64(need) > d.Size {
		return nil, status.Errorf(codes.OutOfRange, "volume %s has %d bytes, under the %d asked: ControllerExpandVolume it first", d.ID, d.Size, need)
	}
	if err := p.showsVolume(d, req.GetVolumePath()); err != nil {
		return nil, err
	}
	if d.Labels[labelAccess] != accessBlock {
		// The filesystem's mounts are all the driver's (staging and
		// targets): the pool grows it at whichever fs.Grow finds.
		if err := p.cfg.Pool.GrowFS(ctx, d.ID, ""); err != nil {
			return nil, grpcError(err, "grow the filesystem of volume %s", d.ID)
		}
	}
	return &csi.NodeExpandVolumeResponse{CapacityBytes: int64(d.Size)}, nil
}

// showsVolume checks that path, beneath the path root, is a mount of
// volume d: its staged or published filesystem, or its device node bound
// there.
func (p *Plugin) showsVolume(d thinpool.Device, path string) error {
	rel, err := p.checkPath("volume path", path)
	if err != nil {
		return status.Errorf(codes.NotFound, "volume %s is not at %.200q: %s", d.ID, path, status.Convert(err).Message())
	}
	f, err := p.openBeneath("volume path", rel, unix.O_PATH, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	m, mounted, err := mountAt(path)
	if err != nil {
		return err
	}
	if !mounted || d.DevicePath == "" {
		return status.Errorf(codes.NotFound, "volume %s is not staged or published at %s", d.ID, path)
	}
	num, err := devNumber(d.DevicePath)
	if err != nil {
		return err
	}
	k := volumeKind{access: d.Labels[labelAccess]}
	if !p.sameDevice(m, num, k) {
		return status.Errorf(codes.NotFound, "%s is not a mount of volume %s", path, d.ID)
	}
	return nil
}

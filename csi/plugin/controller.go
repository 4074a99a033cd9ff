package plugin

import (
	"context"
	"errors"
	"strings"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/thinctl/thinctl/fs"
	"github.com/thinctl/thinctl/thinpool"
)

// ControllerGetCapabilities lists what the controller service does.
func (p *Plugin) ControllerGetCapabilities(context.Context, *csi.ControllerGetCapabilitiesRequest) (*csi.ControllerGetCapabilitiesResponse, error) {
	var caps []*csi.ControllerServiceCapability
	for _, t := range []csi.ControllerServiceCapability_RPC_Type{
		csi.ControllerServiceCapability_RPC_CREATE_DELETE_VOLUME,
		csi.ControllerServiceCapability_RPC_CREATE_DELETE_SNAPSHOT,
		csi.ControllerServiceCapability_RPC_LIST_SNAPSHOTS,
		csi.ControllerServiceCapability_RPC_LIST_VOLUMES,
		csi.ControllerServiceCapability_RPC_CLONE_VOLUME,
		csi.ControllerServiceCapability_RPC_GET_CAPACITY,
		csi.ControllerServiceCapability_RPC_SINGLE_NODE_MULTI_WRITER,
		csi.ControllerServiceCapability_RPC_GET_SNAPSHOT,
		csi.ControllerServiceCapability_RPC_GET_VOLUME_HEALTH,
		csi.ControllerServiceCapability_RPC_LIST_VOLUME_HEALTH,
		csi.ControllerServiceCapability_RPC_EXPAND_VOLUME,
	} {
		caps = append(caps, &csi.ControllerServiceCapability{Type: &csi.ControllerServiceCapability_Rpc{
			Rpc: &csi.ControllerServiceCapability_RPC{Type: t}}})
	}
	return &csi.ControllerGetCapabilitiesResponse{Capabilities: caps}, nil
}

// source is the device a new volume starts from.
type source struct {
	id    string // "" for the base device
	label string // labelSource's value
	dev   thinpool.Device
}

// CreateVolume makes (or finds, for a retried name) a thin device of at
// least the required size.
func (p *Plugin) CreateVolume(ctx context.Context, req *csi.CreateVolumeRequest) (*csi.CreateVolumeResponse, error) {
	if err := checkName("volume name", req.GetName()); err != nil {
		return nil, err
	}
	st, err := p.cfg.Pool.Status()
	if err != nil {
		return nil, grpcError(err, "thin pool status")
	}
	kind, err := checkCapabilities(req.GetVolumeCapabilities(), st.Filesystem)
	if err != nil {
		return nil, err
	}
	params, err := checkVolumeParams(req.GetParameters())
	if err != nil {
		return nil, err
	}
	if err := p.checkRequirements(req.GetAccessibilityRequirements()); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	src, err := p.source(req.GetVolumeContentSource())
	if err != nil {
		return nil, err
	}
	floor := st.BaseSize
	if src.id != "" {
		floor = src.dev.Size
		if src.dev.Labels[labelAccess] != kind.access || src.dev.Labels[labelFS] != string(kind.fs) {
			return nil, status.Errorf(codes.InvalidArgument, "the source %s holds a %s volume and the capabilities ask for %s",
				src.id, describe(src.dev.Labels[labelAccess], src.dev.Labels[labelFS]), describe(kind.access, string(kind.fs)))
		}
	}
	size, err := volumeSize(req.GetCapacityRange(), floor)
	if err != nil {
		return nil, err
	}
	id := volumeID(req.GetName())
	labels := map[string]string{
		labelKind: kindVolume, labelName: req.GetName(), labelAccess: kind.access, labelFS: string(kind.fs),
		labelSource: src.label, labelParams: params.canonical, labelState: stateReady,
	}
	if d, err := p.cfg.Pool.Device(id); err == nil {
		for _, k := range []string{labelKind, labelName, labelAccess, labelFS, labelSource, labelParams} {
			if d.Labels[k] != labels[k] {
				return nil, status.Errorf(codes.AlreadyExists, "volume %.60q exists with another %s (%q, asked %q)",
					req.GetName(), strings.TrimPrefix(k, "csi.thinctl.io/"), d.Labels[k], labels[k])
			}
		}
		if !fits(d.Size, req.GetCapacityRange()) {
			return nil, status.Errorf(codes.AlreadyExists, "volume %.60q exists with %d bytes, outside the capacity range asked", req.GetName(), d.Size)
		}
		if d.Labels[labelState] != stateReady {
			if err := p.finishBlock(ctx, d); err != nil {
				return nil, err
			}
		}
		return p.volumeResponse(d, req.GetVolumeContentSource()), nil
	} else if !errors.Is(err, thinpool.ErrDeviceNotFound) {
		return nil, grpcError(err, "look up volume %s", id)
	}
	if kind.access == accessBlock && src.id != "" && size > src.dev.Size && st.Filesystem == fs.Ext4 {
		// The pool grows an ext4 filesystem on the first activation of
		// a device made bigger than its parent; on a block volume that
		// would be resize2fs on the user's bytes.
		return nil, status.Errorf(codes.OutOfRange, "a block volume from %s must have its size (%d bytes) on this ext4 pool; ask for that size and grow it later",
			src.id, src.dev.Size)
	}
	if kind.access == accessBlock && src.id == "" {
		labels[labelState] = "creating"
	}
	if err := p.cfg.Pool.Create(ctx, id, src.id, thinpool.CreateOptions{Size: size, Labels: labels}); err != nil {
		return nil, grpcError(err, "create volume %s", id)
	}
	d, err := p.cfg.Pool.Device(id)
	if err != nil {
		return nil, grpcError(err, "read back volume %s", id)
	}
	if d.Labels[labelState] != stateReady {
		if err := p.finishBlock(ctx, d); err != nil {
			return nil, err
		}
	}
	return p.volumeResponse(d, req.GetVolumeContentSource()), nil
}

func describe(access, fsType string) string {
	if access == accessBlock {
		return "raw block"
	}
	return fsType
}

// source resolves a volume's content source: a snapshot or a volume this
// plugin made (NotFound otherwise).
func (p *Plugin) source(cs *csi.VolumeContentSource) (source, error) {
	var s source
	var id, prefix, kind string
	switch {
	case cs == nil:
		return s, nil
	case cs.GetSnapshot() != nil:
		id, prefix, kind = cs.GetSnapshot().GetSnapshotId(), snapshotPrefix, kindSnap
	case cs.GetVolume() != nil:
		id, prefix, kind = cs.GetVolume().GetVolumeId(), volumePrefix, kindVolume
	default:
		return s, status.Error(codes.InvalidArgument, "a volume content source names neither a snapshot nor a volume")
	}
	if id == "" {
		return s, status.Errorf(codes.InvalidArgument, "the content source's %s id is empty", kind)
	}
	d, err := p.device(id, prefix, kind)
	if err != nil {
		return s, err
	}
	return source{id: id, label: kind + ":" + id, dev: d}, nil
}

// device returns the device id names when it is one of ours of kind
// (NotFound otherwise, whatever id holds).
func (p *Plugin) device(id, prefix, kind string) (thinpool.Device, error) {
	if !isOurID(id, prefix) {
		return thinpool.Device{}, status.Errorf(codes.NotFound, "no %s %.80q: not an id this driver made", kind, id)
	}
	d, err := p.cfg.Pool.Device(id)
	if errors.Is(err, thinpool.ErrDeviceNotFound) || err == nil && d.Labels[labelKind] != kind {
		return thinpool.Device{}, status.Errorf(codes.NotFound, "no %s %s", kind, id)
	}
	if err != nil {
		return thinpool.Device{}, grpcError(err, "look up %s %s", kind, id)
	}
	return d, nil
}

// finishBlock makes a new raw block volume read as zeros: it holds the
// base device's filesystem until its blocks are discarded (a discarded
// thin block is unmapped and reads as zeros). The label that says so is
// written last, so a retried CreateVolume after a crash does it again.
func (p *Plugin) finishBlock(ctx context.Context, d thinpool.Device) error {
	if err := zeroDevice(ctx, p.cfg.Pool, d.ID); err != nil {
		return err
	}
	labels := d.Labels
	labels[labelState] = stateReady
	return grpcError(p.cfg.Pool.SetLabels(ctx, d.ID, labels), "mark volume %s ready", d.ID)
}

func (p *Plugin) volumeResponse(d thinpool.Device, cs *csi.VolumeContentSource) *csi.CreateVolumeResponse {
	return &csi.CreateVolumeResponse{Volume: &csi.Volume{
		VolumeId:           d.ID,
		CapacityBytes:      int64(d.Size),
		ContentSource:      cs,
		AccessibleTopology: []*csi.Topology{p.topology()},
	}}
}

// checkRequirements refuses accessibility requirements that leave out
// this node (a volume can only be made where its pool is).
func (p *Plugin) checkRequirements(tr *csi.TopologyRequirement) error {
	if tr == nil || len(tr.GetRequisite())+len(tr.GetPreferred()) == 0 {
		return nil
	}
	for _, t := range append(append([]*csi.Topology{}, tr.GetRequisite()...), tr.GetPreferred()...) {
		if p.isOurTopology(t) {
			return nil
		}
	}
	return status.Errorf(codes.ResourceExhausted, "the accessibility requirements leave out this node (%s=%s), the only place this driver makes volumes",
		TopologyKey, p.cfg.NodeID)
}

func (p *Plugin) isOurTopology(t *csi.Topology) bool {
	s := t.GetSegments()
	return len(s) == 1 && s[TopologyKey] == p.cfg.NodeID
}

// DeleteVolume removes a volume; an unknown id is success (the spec's
// idempotency). A volume something still holds is removed when it is
// released (the pool defers it). A volume with snapshots is refused.
func (p *Plugin) DeleteVolume(ctx context.Context, req *csi.DeleteVolumeRequest) (*csi.DeleteVolumeResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume id is empty")
	}
	if err := p.remove(ctx, req.GetVolumeId(), volumePrefix, kindVolume); err != nil {
		return nil, err
	}
	return &csi.DeleteVolumeResponse{}, nil
}

// remove deletes one of our devices of kind; gone already is success.
func (p *Plugin) remove(ctx context.Context, id, prefix, kind string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := p.device(id, prefix, kind); status.Code(err) == codes.NotFound {
		return nil
	} else if err != nil {
		return err
	}
	err := p.cfg.Pool.Remove(ctx, id)
	switch {
	case err == nil, errors.Is(err, thinpool.ErrDeferred), errors.Is(err, thinpool.ErrDeviceNotFound):
		return nil
	case errors.Is(err, thinpool.ErrHasChildren):
		return status.Errorf(codes.FailedPrecondition, "%s %s has snapshots or volumes made from it: delete them first (%v)", kind, id, err)
	}
	return grpcError(err, "delete %s %s", kind, id)
}

// ValidateVolumeCapabilities confirms the capabilities a volume was made
// for.
func (p *Plugin) ValidateVolumeCapabilities(ctx context.Context, req *csi.ValidateVolumeCapabilitiesRequest) (*csi.ValidateVolumeCapabilitiesResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume id is empty")
	}
	if len(req.GetVolumeCapabilities()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "no volume capabilities to validate")
	}
	d, err := p.device(req.GetVolumeId(), volumePrefix, kindVolume)
	if err != nil {
		return nil, err
	}
	kind, err := checkCapabilities(req.GetVolumeCapabilities(), fs.Type(d.Labels[labelFS]))
	if err == nil && (kind.access != d.Labels[labelAccess]) {
		err = status.Errorf(codes.InvalidArgument, "the volume is %s", describe(d.Labels[labelAccess], d.Labels[labelFS]))
	}
	if err != nil {
		return &csi.ValidateVolumeCapabilitiesResponse{Message: status.Convert(err).Message()}, nil
	}
	if _, err := checkVolumeParams(req.GetParameters()); err != nil {
		return &csi.ValidateVolumeCapabilitiesResponse{Message: status.Convert(err).Message()}, nil
	}
	return &csi.ValidateVolumeCapabilitiesResponse{Confirmed: &csi.ValidateVolumeCapabilitiesResponse_Confirmed{
		VolumeContext:      req.GetVolumeContext(),
		VolumeCapabilities: req.GetVolumeCapabilities(),
		Parameters:         req.GetParameters(),
	}}, nil
}

// GetCapacity reports the pool's free data space above its minimum free
// space, times the over-provisioning ratio; zero for another node's
// topology or capabilities this pool cannot serve.
func (p *Plugin) GetCapacity(ctx context.Context, req *csi.GetCapacityRequest) (*csi.GetCapacityResponse, error) {
	params, err := checkVolumeParams(req.GetParameters())
	if err != nil {
		return nil, err
	}
	st, err := p.cfg.Pool.Status()
	if err != nil {
		return nil, grpcError(err, "thin pool status")
	}
	if t := req.GetAccessibleTopology(); t != nil && !p.isOurTopology(t) {
		return &csi.GetCapacityResponse{}, nil
	}
	if len(req.GetVolumeCapabilities()) > 0 {
		if _, err := checkCapabilities(req.GetVolumeCapabilities(), st.Filesystem); err != nil {
			return &csi.GetCapacityResponse{}, nil
		}
	}
	if poolHealthy(st) != "" {
		return &csi.GetCapacityResponse{}, nil
	}
	reserve := uint64(float64(st.DataTotal) * st.MinFreeSpace / 100)
	free := uint64(0)
	if st.DataAvailable > reserve {
		free = st.DataAvailable - reserve
	}
	avail := float64(free) * params.overProvisioning
	return &csi.GetCapacityResponse{
		AvailableCapacity: int64(min(avail, float64(1<<62))),
		MaximumVolumeSize: wrapInt64(st.DataTotal),
		MinimumVolumeSize: wrapInt64(st.BaseSize),
	}, nil
}

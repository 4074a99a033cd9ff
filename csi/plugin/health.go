package plugin

import (
	"context"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// A volume's health is its pool's: every volume of a node shares it.
// poolCondition says what is wrong with the pool, in CSI's terms.
type poolCondition struct {
	volume  csi.VolumeHealthErrorType
	storage csi.StorageHealthErrorType
	reason  string // CamelCase
	message string
}

// conditions lists what is wrong with the pool now (none when healthy).
func (p *Plugin) conditions() []poolCondition {
	st, err := p.cfg.Pool.Status()
	switch {
	case err != nil:
		return []poolCondition{{csi.VolumeHealthErrorType_INACCESSIBLE, csi.StorageHealthErrorType_STORAGE_UNREACHABLE, "ThinPoolUnreadable", err.Error()}}
	case st.State == "down":
		return []poolCondition{{csi.VolumeHealthErrorType_INACCESSIBLE, csi.StorageHealthErrorType_STORAGE_UNREACHABLE, "ThinPoolDown", poolHealthy(st)}}
	case st.Failed:
		return []poolCondition{{csi.VolumeHealthErrorType_INACCESSIBLE, csi.StorageHealthErrorType_STORAGE_UNREACHABLE, "ThinPoolFailed", poolHealthy(st)}}
	case st.ReadOnly, st.NeedsCheck:
		return []poolCondition{{csi.VolumeHealthErrorType_DEGRADED, csi.StorageHealthErrorType_STORAGE_DEGRADED, "ThinPoolReadOnly", poolHealthy(st)}}
	case st.OutOfDataSpace:
		return []poolCondition{{csi.VolumeHealthErrorType_DEGRADED, csi.StorageHealthErrorType_STORAGE_DEGRADED, "ThinPoolOutOfDataSpace", poolHealthy(st)}}
	}
	return nil
}

func (p *Plugin) volumeHealth(id string, conds []poolCondition) *csi.VolumeHealth {
	h := &csi.VolumeHealth{VolumeId: id}
	for _, c := range conds {
		h.HealthStatuses = append(h.HealthStatuses, &csi.VolumeHealth_VolumeHealthEntry{Status: c.volume, Reason: c.reason, Message: c.message})
	}
	return h
}

// healthOf is the condition of volume id (NotFound when it is no volume).
func (p *Plugin) healthOf(id string) (*csi.VolumeHealth, error) {
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "volume id is empty")
	}
	if _, err := p.device(id, volumePrefix, kindVolume); err != nil {
		return nil, err
	}
	return p.volumeHealth(id, p.conditions()), nil
}

// ControllerGetVolumeHealth reports one volume's condition.
func (p *Plugin) ControllerGetVolumeHealth(ctx context.Context, req *csi.ControllerGetVolumeHealthRequest) (*csi.ControllerGetVolumeHealthResponse, error) {
	h, err := p.healthOf(req.GetVolumeId())
	if err != nil {
		return nil, err
	}
	return &csi.ControllerGetVolumeHealthResponse{VolumeHealth: h}, nil
}

// ControllerListVolumeHealth reports every volume's condition, in pages.
func (p *Plugin) ControllerListVolumeHealth(ctx context.Context, req *csi.ControllerListVolumeHealthRequest) (*csi.ControllerListVolumeHealthResponse, error) {
	devs, next, err := p.ours(kindVolume, volumePrefix, req.GetStartingToken(), req.GetMaxEntries())
	if err != nil {
		return nil, err
	}
	conds := p.conditions()
	resp := &csi.ControllerListVolumeHealthResponse{NextToken: next}
	for _, d := range devs {
		resp.Entries = append(resp.Entries, p.volumeHealth(d.ID, conds))
	}
	return resp, nil
}

// NodeGetVolumeHealth reports one volume's condition on this node.
func (p *Plugin) NodeGetVolumeHealth(ctx context.Context, req *csi.NodeGetVolumeHealthRequest) (*csi.NodeGetVolumeHealthResponse, error) {
	h, err := p.healthOf(req.GetVolumeId())
	if err != nil {
		return nil, err
	}
	return &csi.NodeGetVolumeHealthResponse{VolumeHealth: h}, nil
}

// NodeGetStorageHealth reports the pool's condition.
func (p *Plugin) NodeGetStorageHealth(ctx context.Context, req *csi.NodeGetStorageHealthRequest) (*csi.NodeGetStorageHealthResponse, error) {
	resp := &csi.NodeGetStorageHealthResponse{}
	for _, c := range p.conditions() {
		resp.BackendHealth = append(resp.BackendHealth, &csi.NodeGetStorageHealthResponse_StorageBackendHealth{
			Status: c.storage, Reason: c.reason, Message: c.message})
	}
	return resp, nil
}

// GetSnapshot reports one snapshot.
func (p *Plugin) GetSnapshot(ctx context.Context, req *csi.GetSnapshotRequest) (*csi.GetSnapshotResponse, error) {
	if req.GetSnapshotId() == "" {
		return nil, status.Error(codes.InvalidArgument, "snapshot id is empty")
	}
	d, err := p.device(req.GetSnapshotId(), snapshotPrefix, kindSnap)
	if err != nil {
		return nil, err
	}
	return &csi.GetSnapshotResponse{Snapshot: p.snapshotOf(d)}, nil
}

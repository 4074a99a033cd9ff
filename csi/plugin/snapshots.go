package plugin

import (
	"context"
	"errors"
	"sort"
	"strings"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/thinctl/thinctl/thinpool"
)

// CreateSnapshot makes (or finds, for a retried name) a thin snapshot of a
// volume: one create_snap message, ready at once.
func (p *Plugin) CreateSnapshot(ctx context.Context, req *csi.CreateSnapshotRequest) (*csi.CreateSnapshotResponse, error) {
	if err := checkName("snapshot name", req.GetName()); err != nil {
		return nil, err
	}
	if req.GetSourceVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "source volume id is empty")
	}
	if err := checkSnapshotParams(req.GetParameters()); err != nil {
		return nil, err
	}
	if err := p.checkRequirements(req.GetAccessibilityRequirements()); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	id := snapshotID(req.GetName())
	srcLabel := kindVolume + ":" + req.GetSourceVolumeId()
	if d, err := p.cfg.Pool.Device(id); err == nil {
		if d.Labels[labelName] != req.GetName() || d.Labels[labelSource] != srcLabel {
			return nil, status.Errorf(codes.AlreadyExists, "snapshot %.60q exists of another volume (%s)", req.GetName(), d.Labels[labelSource])
		}
		return &csi.CreateSnapshotResponse{Snapshot: p.snapshotOf(d)}, nil
	} else if !errors.Is(err, thinpool.ErrDeviceNotFound) {
		return nil, grpcError(err, "look up snapshot %s", id)
	}
	src, err := p.device(req.GetSourceVolumeId(), volumePrefix, kindVolume)
	if err != nil {
		return nil, err
	}
	labels := map[string]string{
		labelKind: kindSnap, labelName: req.GetName(), labelAccess: src.Labels[labelAccess], labelFS: src.Labels[labelFS],
		labelSource: srcLabel, labelState: stateReady,
	}
	if err := p.cfg.Pool.Create(ctx, id, src.ID, thinpool.CreateOptions{Labels: labels}); err != nil {
		return nil, grpcError(err, "snapshot volume %s", src.ID)
	}
	d, err := p.cfg.Pool.Device(id)
	if err != nil {
		return nil, grpcError(err, "read back snapshot %s", id)
	}
	return &csi.CreateSnapshotResponse{Snapshot: p.snapshotOf(d)}, nil
}

// snapshotOf describes snapshot d. It lives on this node only, like its
// volume; CreateSnapshot refuses requirements that leave this node out,
// but the optional accessible_topology is left empty: csi-test v5.6.0
// compares it with reflect.DeepEqual, which sees the protobuf messages'
// internal size caches and fails on an equal topology.
func (p *Plugin) snapshotOf(d thinpool.Device) *csi.Snapshot {
	src := d.Labels[labelSource]
	return &csi.Snapshot{
		SnapshotId:     d.ID,
		SourceVolumeId: strings.TrimPrefix(src, kindVolume+":"),
		SizeBytes:      int64(d.Size),
		CreationTime:   timestamppb.New(d.Created),
		ReadyToUse:     true,
	}
}

// DeleteSnapshot removes a snapshot; an unknown id is success. A snapshot
// volumes were restored from is refused while they exist.
func (p *Plugin) DeleteSnapshot(ctx context.Context, req *csi.DeleteSnapshotRequest) (*csi.DeleteSnapshotResponse, error) {
	if req.GetSnapshotId() == "" {
		return nil, status.Error(codes.InvalidArgument, "snapshot id is empty")
	}
	if err := p.remove(ctx, req.GetSnapshotId(), snapshotPrefix, kindSnap); err != nil {
		return nil, err
	}
	return &csi.DeleteSnapshotResponse{}, nil
}

// ours lists the live devices of kind, sorted by id, after the id token
// (the last id of the previous page; Aborted when it is not one of ours).
func (p *Plugin) ours(kind, prefix, token string, maxEntries int32) ([]thinpool.Device, string, error) {
	if maxEntries < 0 {
		return nil, "", status.Errorf(codes.InvalidArgument, "max_entries %d is negative", maxEntries)
	}
	if token != "" && !isOurID(token, prefix) {
		return nil, "", status.Errorf(codes.Aborted, "starting token %.80q is not one this driver gave", token)
	}
	labels, err := p.cfg.Pool.DeviceLabels()
	if err != nil {
		return nil, "", grpcError(err, "list devices")
	}
	var ids []string
	for id, l := range labels {
		if l[labelKind] == kind && isOurID(id, prefix) && id > token {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	next := ""
	if maxEntries > 0 && len(ids) > int(maxEntries) {
		ids = ids[:maxEntries]
		next = ids[len(ids)-1]
	}
	var out []thinpool.Device
	for _, id := range ids {
		d, err := p.cfg.Pool.Device(id)
		if errors.Is(err, thinpool.ErrDeviceNotFound) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, "", grpcError(err, "look up %s", id)
		}
		out = append(out, d)
	}
	return out, next, nil
}

// ListSnapshots lists snapshots, one or those of one volume when asked.
func (p *Plugin) ListSnapshots(ctx context.Context, req *csi.ListSnapshotsRequest) (*csi.ListSnapshotsResponse, error) {
	if id := req.GetSnapshotId(); id != "" {
		d, err := p.device(id, snapshotPrefix, kindSnap)
		if status.Code(err) == codes.NotFound {
			return &csi.ListSnapshotsResponse{}, nil
		} else if err != nil {
			return nil, err
		}
		if v := req.GetSourceVolumeId(); v != "" && d.Labels[labelSource] != kindVolume+":"+v {
			return &csi.ListSnapshotsResponse{}, nil
		}
		return &csi.ListSnapshotsResponse{Entries: []*csi.ListSnapshotsResponse_Entry{{Snapshot: p.snapshotOf(d)}}}, nil
	}
	devs, next, err := p.ours(kindSnap, snapshotPrefix, req.GetStartingToken(), req.GetMaxEntries())
	if err != nil {
		return nil, err
	}
	resp := &csi.ListSnapshotsResponse{NextToken: next}
	for _, d := range devs {
		if v := req.GetSourceVolumeId(); v != "" && d.Labels[labelSource] != kindVolume+":"+v {
			continue
		}
		resp.Entries = append(resp.Entries, &csi.ListSnapshotsResponse_Entry{Snapshot: p.snapshotOf(d)})
	}
	return resp, nil
}

// ListVolumes lists the volumes this driver made on this node's pool.
func (p *Plugin) ListVolumes(ctx context.Context, req *csi.ListVolumesRequest) (*csi.ListVolumesResponse, error) {
	devs, next, err := p.ours(kindVolume, volumePrefix, req.GetStartingToken(), req.GetMaxEntries())
	if err != nil {
		return nil, err
	}
	resp := &csi.ListVolumesResponse{NextToken: next}
	for _, d := range devs {
		resp.Entries = append(resp.Entries, &csi.ListVolumesResponse_Entry{Volume: &csi.Volume{
			VolumeId: d.ID, CapacityBytes: int64(d.Size), AccessibleTopology: []*csi.Topology{p.topology()},
		}})
	}
	return resp, nil
}

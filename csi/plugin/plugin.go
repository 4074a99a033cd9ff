package plugin

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/thinctl/thinctl/errdefs"
	"github.com/thinctl/thinctl/fs"
	"github.com/thinctl/thinctl/thinpool"
)

// DriverName is the CSI driver name the plugin reports (the CSIDriver
// object's name and a StorageClass's provisioner).
const DriverName = "csi.thinctl.io"

// TopologyKey is the topology segment every volume is bound to: the node
// whose pool holds it.
const TopologyKey = "topology.thinctl.io/node"

// Config is what New needs.
type Config struct {
	// Pool is the open thin pool volumes are made in; the plugin does
	// not close it.
	Pool *thinpool.Pool
	// NodeID is this node's name (NodeGetInfo, the topology segment).
	NodeID string
	// PathRoot is the directory every staging and target path must lie
	// beneath (the kubelet's, /var/lib/kubelet); absolute and clean.
	PathRoot string
	// Version is reported by GetPluginInfo.
	Version string
}

// Plugin serves CSI's Identity, Controller and Node services. Its methods
// are safe for concurrent use: requests that change devices are
// serialised.
type Plugin struct {
	csi.UnimplementedIdentityServer
	csi.UnimplementedControllerServer
	csi.UnimplementedNodeServer

	cfg Config
	// mu serialises every request that makes, removes, mounts or
	// unmounts something: the pool's own calls are short, and one order
	// of steps per volume keeps the idempotency checks simple.
	mu sync.Mutex
}

// New checks cfg and returns a Plugin.
func New(cfg Config) (*Plugin, error) {
	if cfg.Pool == nil {
		return nil, errors.New("plugin: Config.Pool is nil")
	}
	if err := checkName("node id", cfg.NodeID); err != nil {
		return nil, fmt.Errorf("plugin: %s", status.Convert(err).Message())
	}
	if !filepath.IsAbs(cfg.PathRoot) || filepath.Clean(cfg.PathRoot) != cfg.PathRoot || cfg.PathRoot == "/" {
		return nil, fmt.Errorf("plugin: path root %q is not an absolute, clean directory other than /", cfg.PathRoot)
	}
	return &Plugin{cfg: cfg}, nil
}

// Register adds the three services to s.
func (p *Plugin) Register(s *grpc.Server) {
	csi.RegisterIdentityServer(s, p)
	csi.RegisterControllerServer(s, p)
	csi.RegisterNodeServer(s, p)
}

// GetPluginInfo names the driver.
func (p *Plugin) GetPluginInfo(context.Context, *csi.GetPluginInfoRequest) (*csi.GetPluginInfoResponse, error) {
	v := p.cfg.Version
	if v == "" {
		v = "unknown"
	}
	return &csi.GetPluginInfoResponse{Name: DriverName, VendorVersion: v}, nil
}

// GetPluginCapabilities: a controller service, volumes bound to a node,
// online expansion.
func (p *Plugin) GetPluginCapabilities(context.Context, *csi.GetPluginCapabilitiesRequest) (*csi.GetPluginCapabilitiesResponse, error) {
	svc := func(t csi.PluginCapability_Service_Type) *csi.PluginCapability {
		return &csi.PluginCapability{Type: &csi.PluginCapability_Service_{Service: &csi.PluginCapability_Service{Type: t}}}
	}
	return &csi.GetPluginCapabilitiesResponse{Capabilities: []*csi.PluginCapability{
		svc(csi.PluginCapability_Service_CONTROLLER_SERVICE),
		svc(csi.PluginCapability_Service_VOLUME_ACCESSIBILITY_CONSTRAINTS),
		svc(csi.PluginCapability_Service_SNAPSHOT_ACCESSIBILITY_CONSTRAINTS),
		// Volumes grow while staged and published (ControllerExpandVolume,
		// NodeExpandVolume).
		{Type: &csi.PluginCapability_VolumeExpansion_{VolumeExpansion: &csi.PluginCapability_VolumeExpansion{
			Type: csi.PluginCapability_VolumeExpansion_ONLINE}}},
	}}, nil
}

// Probe is ready when the pool answers and is writable.
func (p *Plugin) Probe(context.Context, *csi.ProbeRequest) (*csi.ProbeResponse, error) {
	st, err := p.cfg.Pool.Status()
	if err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "thin pool status: %v", err)
	}
	return &csi.ProbeResponse{Ready: wrapperspb.Bool(poolHealthy(st) == "")}, nil
}

// poolHealthy says why the pool cannot serve writes ("" when it can).
func poolHealthy(st thinpool.Status) string {
	switch {
	case st.State == "down":
		return "the thin pool is not active"
	case st.Failed, st.ReadOnly, st.NeedsCheck:
		return fmt.Sprintf("the thin pool is %s (needs_check %v): repair its metadata", st.State, st.NeedsCheck)
	case st.OutOfDataSpace:
		return "the thin pool is out of data space: writes fail"
	}
	return ""
}

// topology is this node's segment.
func (p *Plugin) topology() *csi.Topology {
	return &csi.Topology{Segments: map[string]string{TopologyKey: p.cfg.NodeID}}
}

// grpcError turns an error of the pool or fs into a status with the CSI
// code its class calls for; msg says what was being done.
func grpcError(err error, format string, a ...any) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	msg := fmt.Sprintf(format, a...) + ": " + err.Error()
	code := codes.Internal
	switch {
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	case errors.Is(err, thinpool.ErrInvalidSize):
		code = codes.OutOfRange
	case errors.Is(err, errdefs.ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, errdefs.ErrExists):
		code = codes.AlreadyExists
	case errors.Is(err, errdefs.ErrNoSpace):
		code = codes.ResourceExhausted
	case errors.Is(err, errdefs.ErrHasChildren), errors.Is(err, errdefs.ErrBusy), errors.Is(err, thinpool.ErrPoolReadOnly):
		code = codes.FailedPrecondition
	case errors.Is(err, errdefs.ErrInvalidArgument):
		code = codes.InvalidArgument
	case errors.Is(err, fs.ErrToolMissing):
		code = codes.FailedPrecondition
	}
	return status.Error(code, msg)
}

func wrapInt64(n uint64) *wrapperspb.Int64Value { return wrapperspb.Int64(int64(min(n, 1<<62))) }

//go:build vm

package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/thinctl/thinctl/fs"
	"github.com/thinctl/thinctl/internal/testenv"
)

// clients dials the server's socket.
type clients struct {
	c csi.ControllerClient
	n csi.NodeClient
}

func dial(t *testing.T, s *server) clients {
	t.Helper()
	current = t
	conn, err := grpc.NewClient("unix://"+s.sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return clients{csi.NewControllerClient(conn), csi.NewNodeClient(conn)}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func capOf(block bool) *csi.VolumeCapability {
	c := &csi.VolumeCapability{AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER}}
	if block {
		c.AccessType = &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}}
	} else {
		c.AccessType = &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}}
	}
	return c
}

func wantCode(t *testing.T, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Fatalf("code %v (%v), want %v", got, err, want)
	}
}

// current is the running test, for must (the tests in this file do not
// run in parallel); dial sets it.
var current *testing.T

// must fails the current test on err: must(client.Call(...)) keeps a
// request and its check on one line.
func must[T any](v T, err error) T {
	if err != nil {
		current.Helper()
		current.Fatal(err)
	}
	return v
}

// stagePublish stages vol at staging and publishes it at target.
func stagePublish(t *testing.T, cl clients, vol, staging, target string, block, ro bool) {
	t.Helper()
	ctx := ctxT(t)
	if err := os.MkdirAll(staging, 0o750); err != nil {
		t.Fatal(err)
	}
	must(cl.n.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: vol, StagingTargetPath: staging, VolumeCapability: capOf(block)}))
	must(cl.n.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: vol, StagingTargetPath: staging, TargetPath: target,
		VolumeCapability: capOf(block), Readonly: ro}))
}

func unpublishUnstage(t *testing.T, cl clients, vol, staging, target string) {
	t.Helper()
	ctx := ctxT(t)
	must(cl.n.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: vol, TargetPath: target}))
	must(cl.n.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: vol, StagingTargetPath: staging}))
}

// withVolume starts a driver on a fresh pool and makes one volume
// through it, in the boot without udev.
func withVolume(t *testing.T, req *csi.CreateVolumeRequest) (*server, clients, context.Context, *csi.Volume) {
	t.Helper()
	onlyWithoutUdev(t)
	s := startServer(t)
	cl := dial(t, s)
	ctx := ctxT(t)
	return s, cl, ctx, must(cl.c.CreateVolume(ctx, req)).GetVolume()
}

func TestABlockVolumeReadsAsZerosAndIsPublishedAsItsDeviceNode(t *testing.T) {
	s, cl, ctx, vol := withVolume(t, &csi.CreateVolumeRequest{Name: "blk", VolumeCapabilities: []*csi.VolumeCapability{capOf(true)},
		CapacityRange: &csi.CapacityRange{RequiredBytes: 48 << 20}})
	if vol.GetCapacityBytes() != 48<<20 {
		t.Fatalf("capacity %d", vol.GetCapacityBytes())
	}
	staging, target := filepath.Join(s.pathRoot, "staging"), filepath.Join(s.pathRoot, "blk")
	stagePublish(t, cl, vol.GetVolumeId(), staging, target, true, false)
	f, err := os.OpenFile(target, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	size, err := f.Seek(0, 2)
	if err != nil || size != 48<<20 {
		t.Fatalf("device size %d %v", size, err)
	}
	// The base device's ext4 superblock (1 KiB in) and its backups are gone.
	buf := make([]byte, 4<<20)
	if _, err := f.ReadAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf, make([]byte, len(buf))) {
		t.Fatal("a new block volume does not read as zeros")
	}
	if _, err := f.WriteAt([]byte("written through the target"), 1<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	unpublishUnstage(t, cl, vol.GetVolumeId(), staging, target)
	if _, err := os.Lstat(target); !os.IsNotExist(err) {
		t.Fatalf("the target file is left: %v", err)
	}
	must(cl.c.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: vol.GetVolumeId()}))
}

func TestAReadOnlyPublishRefusesWritesAndTheStagedFilesystemKeepsWorking(t *testing.T) {
	s, cl, ctx, vol := withVolume(t, &csi.CreateVolumeRequest{Name: "ro", VolumeCapabilities: []*csi.VolumeCapability{capOf(false)}})
	staging := filepath.Join(s.pathRoot, "staging")
	rw, ro := filepath.Join(s.pathRoot, "rw"), filepath.Join(s.pathRoot, "ro")
	stagePublish(t, cl, vol.GetVolumeId(), staging, rw, false, false)
	must(cl.n.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: vol.GetVolumeId(), StagingTargetPath: staging, TargetPath: ro,
		VolumeCapability: capOf(false), Readonly: true}))
	if err := os.WriteFile(filepath.Join(rw, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ro, "g"), []byte("x"), 0o644); err == nil {
		t.Fatal("a read-only publish took a write")
	}
	if b, err := os.ReadFile(filepath.Join(ro, "f")); err != nil || string(b) != "x" {
		t.Fatalf("%q %v", b, err)
	}
	// Publishing the read-only target again as read-write is another volume's mount there.
	_, err := cl.n.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: vol.GetVolumeId(), StagingTargetPath: staging, TargetPath: ro,
		VolumeCapability: capOf(false)})
	wantCode(t, err, codes.AlreadyExists)
	must(cl.n.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: vol.GetVolumeId(), TargetPath: ro}))
	// Unstaging while published is refused and leaves the publish working.
	_, err = cl.n.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: vol.GetVolumeId(), StagingTargetPath: staging})
	if err == nil {
		// The staging mount went (lazily) but the published bind holds the device.
		if b, err := os.ReadFile(filepath.Join(rw, "f")); err != nil || string(b) != "x" {
			t.Fatalf("publish broken by unstage: %q %v", b, err)
		}
	}
	unpublishUnstage(t, cl, vol.GetVolumeId(), staging, rw)
	must(cl.c.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: vol.GetVolumeId()}))
}

func TestASnapshotKeepsItsBytesAndARestoreIsGrownToTheAskedSize(t *testing.T) {
	s, cl, ctx, vol := withVolume(t, &csi.CreateVolumeRequest{Name: "src", VolumeCapabilities: []*csi.VolumeCapability{capOf(false)}})
	staging, target := filepath.Join(s.pathRoot, "staging"), filepath.Join(s.pathRoot, "t")
	stagePublish(t, cl, vol.GetVolumeId(), staging, target, false, false)
	if err := os.WriteFile(filepath.Join(target, "f"), []byte("before"), 0o644); err != nil {
		t.Fatal(err)
	}
	unix.Sync()
	snap := must(cl.c.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "snap", SourceVolumeId: vol.GetVolumeId()})).GetSnapshot()
	if err := os.WriteFile(filepath.Join(target, "f"), []byte("after"), 0o644); err != nil {
		t.Fatal(err)
	}
	unpublishUnstage(t, cl, vol.GetVolumeId(), staging, target)
	// The source cannot go while its snapshot exists.
	_, err := cl.c.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: vol.GetVolumeId()})
	wantCode(t, err, codes.FailedPrecondition)

	restored := must(cl.c.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "restored", VolumeCapabilities: []*csi.VolumeCapability{capOf(false)},
		CapacityRange: &csi.CapacityRange{RequiredBytes: 256 << 20},
		VolumeContentSource: &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{
			Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: snap.GetSnapshotId()}}}})).GetVolume()
	stagePublish(t, cl, restored.GetVolumeId(), staging, target, false, false)
	if b, err := os.ReadFile(filepath.Join(target, "f")); err != nil || string(b) != "before" {
		t.Fatalf("restored %q %v", b, err)
	}
	st := must(cl.n.NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: restored.GetVolumeId(), VolumePath: target}))
	if total := st.GetUsage()[0].GetTotal(); total < 200<<20 {
		t.Fatalf("the restored filesystem has %d bytes: not grown to 256 MiB", total)
	}
	unpublishUnstage(t, cl, restored.GetVolumeId(), staging, target)
	for _, id := range []string{restored.GetVolumeId()} {
		must(cl.c.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: id}))
	}
	must(cl.c.DeleteSnapshot(ctx, &csi.DeleteSnapshotRequest{SnapshotId: snap.GetSnapshotId()}))
	must(cl.c.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: vol.GetVolumeId()}))
}

func TestHostileRequestsAreRefusedAndTouchNothingOutside(t *testing.T) {
	onlyWithoutUdev(t)
	s := startServer(t)
	cl := dial(t, s)
	ctx := ctxT(t)
	outside := t.TempDir()
	_, err := cl.c.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "huge", VolumeCapabilities: []*csi.VolumeCapability{capOf(false)},
		CapacityRange: &csi.CapacityRange{RequiredBytes: 1 << 62}})
	wantCode(t, err, codes.OutOfRange)
	vol := must(cl.c.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "v", VolumeCapabilities: []*csi.VolumeCapability{capOf(false)}})).GetVolume()
	// The same name with another shape is AlreadyExists; the volume stays.
	_, err = cl.c.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "v", VolumeCapabilities: []*csi.VolumeCapability{capOf(true)}})
	wantCode(t, err, codes.AlreadyExists)
	_, err = cl.c.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "v", VolumeCapabilities: []*csi.VolumeCapability{capOf(false)},
		Parameters: map[string]string{"overProvisioningRatio": "2"}})
	wantCode(t, err, codes.AlreadyExists)
	staging := filepath.Join(s.pathRoot, "staging")
	if err := os.Mkdir(staging, 0o750); err != nil {
		t.Fatal(err)
	}
	// Paths outside the root, or through a symbolic link leading out.
	if err := os.Symlink(outside, filepath.Join(s.pathRoot, "link")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{outside, filepath.Join(s.pathRoot, "link"), filepath.Join(s.pathRoot, "link", "x"), s.pathRoot + "/../x"} {
		_, err := cl.n.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: vol.GetVolumeId(), StagingTargetPath: p, VolumeCapability: capOf(false)})
		wantCode(t, err, codes.InvalidArgument)
	}
	must(cl.n.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: vol.GetVolumeId(), StagingTargetPath: staging, VolumeCapability: capOf(false)}))
	for _, p := range []string{filepath.Join(outside, "t"), filepath.Join(s.pathRoot, "link", "t"), filepath.Join(s.pathRoot, "link")} {
		_, err := cl.n.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: vol.GetVolumeId(), StagingTargetPath: staging,
			TargetPath: p, VolumeCapability: capOf(false)})
		wantCode(t, err, codes.InvalidArgument)
		_, err = cl.n.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: vol.GetVolumeId(), TargetPath: p})
		wantCode(t, err, codes.InvalidArgument)
	}
	if es, _ := os.ReadDir(outside); len(es) != 0 {
		t.Fatalf("made outside the root: %v", es)
	}
	// Another program's device, or a path, is no volume of ours.
	for _, id := range []string{"base", "../../x", "csi-vol-" + string(make([]byte, 64))} {
		_, err := cl.n.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: id, StagingTargetPath: staging, VolumeCapability: capOf(false)})
		wantCode(t, err, codes.NotFound)
	}
	must(cl.n.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: vol.GetVolumeId(), StagingTargetPath: staging}))
	must(cl.c.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: vol.GetVolumeId()}))
}

func TestCapacityIsThePoolsFreeSpaceTimesTheRatioAndNothingElsewhere(t *testing.T) {
	onlyWithoutUdev(t)
	s := startServer(t)
	cl := dial(t, s)
	ctx := ctxT(t)
	one := must(cl.c.GetCapacity(ctx, &csi.GetCapacityRequest{}))
	two := must(cl.c.GetCapacity(ctx, &csi.GetCapacityRequest{Parameters: map[string]string{"overProvisioningRatio": "2"}}))
	// 2 GiB of data, 10% kept free, a little used by the base device.
	if a := one.GetAvailableCapacity(); a < 1<<30 || a > 2<<30*9/10 {
		t.Fatalf("available %d", a)
	}
	if two.GetAvailableCapacity() != 2*one.GetAvailableCapacity() {
		t.Fatalf("ratio 2: %d, ratio 1: %d", two.GetAvailableCapacity(), one.GetAvailableCapacity())
	}
	if one.GetMaximumVolumeSize().GetValue() != 2<<30 || one.GetMinimumVolumeSize().GetValue() != 32<<20 {
		t.Fatalf("bounds %v %v", one.GetMaximumVolumeSize(), one.GetMinimumVolumeSize())
	}
	other := must(cl.c.GetCapacity(ctx, &csi.GetCapacityRequest{AccessibleTopology: &csi.Topology{Segments: map[string]string{"topology.thinctl.io/node": "node-2"}}}))
	if other.GetAvailableCapacity() != 0 {
		t.Fatalf("another node's capacity: %d", other.GetAvailableCapacity())
	}
	_, err := cl.c.GetCapacity(ctx, &csi.GetCapacityRequest{Parameters: map[string]string{"overProvisioningRatio": "-1"}})
	wantCode(t, err, codes.InvalidArgument)
	// A volume can only be made here.
	_, err = cl.c.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "elsewhere", VolumeCapabilities: []*csi.VolumeCapability{capOf(false)},
		AccessibilityRequirements: &csi.TopologyRequirement{Requisite: []*csi.Topology{{Segments: map[string]string{"topology.thinctl.io/node": "node-2"}}}}})
	wantCode(t, err, codes.ResourceExhausted)
}

func TestAVolumeThatWouldCrossThePoolsMinimumFreeSpaceIsResourceExhausted(t *testing.T) {
	onlyWithoutUdev(t)
	// The base device maps a few MiB of the 2 GiB: more than 0.05 % of it.
	opts := testPool
	opts.MinFreeSpace = 99.95
	s := startServerWith(t, opts)
	cl := dial(t, s)
	ctx := ctxT(t)
	_, err := cl.c.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "full", VolumeCapabilities: []*csi.VolumeCapability{capOf(false)}})
	wantCode(t, err, codes.ResourceExhausted)
	if got := must(cl.c.ListVolumes(ctx, &csi.ListVolumesRequest{})); len(got.GetEntries()) != 0 {
		t.Fatalf("volumes after the refusal: %v", got.GetEntries())
	}
	if c := must(cl.c.GetCapacity(ctx, &csi.GetCapacityRequest{})); c.GetAvailableCapacity() != 0 {
		t.Fatalf("capacity %d under the minimum", c.GetAvailableCapacity())
	}
}

func TestAnXFSPoolsVolumeIsGrownOnlineToItsSizeWhenStaged(t *testing.T) {
	onlyWithoutUdev(t)
	testenv.RequireTool(t, "mkfs.xfs")
	testenv.RequireTool(t, "xfs_growfs")
	opts := testPool
	opts.Filesystem = fs.XFS
	opts.BaseSize = 320 << 20 // mkfs.xfs makes nothing smaller than 300 MiB
	s := startServerWith(t, opts)
	cl := dial(t, s)
	ctx := ctxT(t)
	_, err := cl.c.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "ext4", VolumeCapabilities: []*csi.VolumeCapability{{
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{FsType: "ext4"}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER}}}})
	wantCode(t, err, codes.InvalidArgument)
	vol := must(cl.c.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "x", VolumeCapabilities: []*csi.VolumeCapability{capOf(false)},
		CapacityRange: &csi.CapacityRange{RequiredBytes: 640 << 20}})).GetVolume()
	staging, target := filepath.Join(s.pathRoot, "staging"), filepath.Join(s.pathRoot, "t")
	stagePublish(t, cl, vol.GetVolumeId(), staging, target, false, false)
	st := must(cl.n.NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: vol.GetVolumeId(), VolumePath: target}))
	if total := st.GetUsage()[0].GetTotal(); total < 560<<20 {
		t.Fatalf("the xfs filesystem has %d bytes: not grown to 640 MiB", total)
	}
	if err := os.WriteFile(filepath.Join(target, "f"), []byte("xfs"), 0o644); err != nil {
		t.Fatal(err)
	}
	unpublishUnstage(t, cl, vol.GetVolumeId(), staging, target)
	// Staged again, it is the same filesystem.
	stagePublish(t, cl, vol.GetVolumeId(), staging, target, false, false)
	if b, err := os.ReadFile(filepath.Join(target, "f")); err != nil || string(b) != "xfs" {
		t.Fatalf("%q %v", b, err)
	}
	unpublishUnstage(t, cl, vol.GetVolumeId(), staging, target)
	must(cl.c.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: vol.GetVolumeId()}))
}

//go:build vm

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/thinctl/thinctl/fs"
	"github.com/thinctl/thinctl/internal/testenv"
)

// statfsBytes is the size of the filesystem at path as statfs gives it.
func statfsBytes(t *testing.T, path string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Blocks) * st.Bsize
}

func TestAStagedPublishedVolumeGrowsOnlineWithItsDataOnExt4AndXFS(t *testing.T) {
	onlyWithoutUdev(t)
	for _, typ := range []fs.Type{fs.Ext4, fs.XFS} {
		t.Run(string(typ), func(t *testing.T) {
			testenv.RequireTool(t, "mkfs."+string(typ))
			opts := testPool
			opts.Filesystem = typ
			if typ == fs.XFS {
				opts.BaseSize = 320 << 20 // mkfs.xfs makes nothing smaller than 300 MiB
			}
			s := startServerWith(t, opts)
			cl := dial(t, s)
			ctx := ctxT(t)
			vol := must(cl.c.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "grow", VolumeCapabilities: []*csi.VolumeCapability{capOf(false)},
				CapacityRange: &csi.CapacityRange{RequiredBytes: int64(opts.BaseSize)}})).GetVolume()
			id := vol.GetVolumeId()
			staging, target := filepath.Join(s.pathRoot, "staging"), filepath.Join(s.pathRoot, "t")
			stagePublish(t, cl, id, staging, target, false, false)
			data := bytes.Repeat([]byte("kept across the expansion\n"), 4096)
			if err := os.WriteFile(filepath.Join(target, "f"), data, 0o644); err != nil {
				t.Fatal(err)
			}
			before := statfsBytes(t, target)

			want := int64(opts.BaseSize) + 256<<20
			rsp := must(cl.c.ControllerExpandVolume(ctx, &csi.ControllerExpandVolumeRequest{VolumeId: id,
				CapacityRange: &csi.CapacityRange{RequiredBytes: want}, VolumeCapability: capOf(false)}))
			if rsp.GetCapacityBytes() != want || !rsp.GetNodeExpansionRequired() {
				t.Fatalf("ControllerExpandVolume: %v, want %d bytes and a node expansion", rsp, want)
			}
			// The same request again is no change; a smaller limit is a shrink.
			if again := must(cl.c.ControllerExpandVolume(ctx, &csi.ControllerExpandVolumeRequest{VolumeId: id,
				CapacityRange: &csi.CapacityRange{RequiredBytes: want}})); again.GetCapacityBytes() != want {
				t.Fatalf("a repeated expansion answers %d bytes", again.GetCapacityBytes())
			}
			_, err := cl.c.ControllerExpandVolume(ctx, &csi.ControllerExpandVolumeRequest{VolumeId: id,
				CapacityRange: &csi.CapacityRange{RequiredBytes: 1 << 20, LimitBytes: want - 1<<20}})
			wantCode(t, err, codes.OutOfRange)
			// More than the pool's data space.
			_, err = cl.c.ControllerExpandVolume(ctx, &csi.ControllerExpandVolumeRequest{VolumeId: id,
				CapacityRange: &csi.CapacityRange{RequiredBytes: 64 << 30}})
			wantCode(t, err, codes.OutOfRange)
			// A path beneath the root that is no mount of the volume.
			_, err = cl.n.NodeExpandVolume(ctx, &csi.NodeExpandVolumeRequest{VolumeId: id, VolumePath: s.pathRoot})
			wantCode(t, err, codes.NotFound)
			// Outside the root, and through a symbolic link to the target.
			_, err = cl.n.NodeExpandVolume(ctx, &csi.NodeExpandVolumeRequest{VolumeId: id, VolumePath: "/"})
			wantCode(t, err, codes.NotFound)
			link := filepath.Join(s.pathRoot, "link")
			if err := os.Symlink(target, link); err != nil {
				t.Fatal(err)
			}
			_, err = cl.n.NodeExpandVolume(ctx, &csi.NodeExpandVolumeRequest{VolumeId: id, VolumePath: link})
			if code := status.Code(err); code != codes.NotFound && code != codes.InvalidArgument {
				t.Fatalf("NodeExpandVolume through a symbolic link: %v", err)
			}
			if got := statfsBytes(t, target); got != before {
				t.Fatalf("the refused requests grew the filesystem to %d bytes (%d before)", got, before)
			}

			must(cl.n.NodeExpandVolume(ctx, &csi.NodeExpandVolumeRequest{VolumeId: id, VolumePath: target,
				CapacityRange: &csi.CapacityRange{RequiredBytes: want}, VolumeCapability: capOf(false)}))
			after := statfsBytes(t, target)
			if after < before+200<<20 || after > want {
				t.Fatalf("the published %s has %d bytes after the expansion (before %d), want about %d", typ, after, before, want)
			}
			stats := must(cl.n.NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: id, VolumePath: staging}))
			if got := stats.GetUsage()[0].GetTotal(); got != after {
				t.Fatalf("NodeGetVolumeStats of the staging path says %d bytes, statfs of the target %d", got, after)
			}
			if b, err := os.ReadFile(filepath.Join(target, "f")); err != nil || !bytes.Equal(b, data) {
				t.Fatalf("the file after the expansion: %d bytes, %v", len(b), err)
			}
			// Staged again, it is the grown filesystem with the data.
			unpublishUnstage(t, cl, id, staging, target)
			stagePublish(t, cl, id, staging, target, false, false)
			if got := statfsBytes(t, target); got != after {
				t.Fatalf("staged again the filesystem has %d bytes, %d before", got, after)
			}
			if b, err := os.ReadFile(filepath.Join(target, "f")); err != nil || !bytes.Equal(b, data) {
				t.Fatalf("the file staged again: %d bytes, %v", len(b), err)
			}
			unpublishUnstage(t, cl, id, staging, target)
			must(cl.c.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: id}))
		})
	}
}

func TestABlockVolumeGrowsAsItsDeviceWithItsBytes(t *testing.T) {
	s, cl, ctx, vol := withVolume(t, &csi.CreateVolumeRequest{Name: "blk", VolumeCapabilities: []*csi.VolumeCapability{capOf(true)},
		CapacityRange: &csi.CapacityRange{RequiredBytes: 48 << 20}})
	id := vol.GetVolumeId()
	staging, target := filepath.Join(s.pathRoot, "staging"), filepath.Join(s.pathRoot, "b")
	stagePublish(t, cl, id, staging, target, true, false)
	pattern := bytes.Repeat([]byte{0x5a}, 1<<20)
	f, err := os.OpenFile(target, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(pattern, 0); err != nil {
		t.Fatal(err)
	}
	must(0, f.Sync())
	f.Close()
	rsp := must(cl.c.ControllerExpandVolume(ctx, &csi.ControllerExpandVolumeRequest{VolumeId: id,
		CapacityRange: &csi.CapacityRange{RequiredBytes: 96 << 20}, VolumeCapability: capOf(true)}))
	if rsp.GetCapacityBytes() != 96<<20 || rsp.GetNodeExpansionRequired() {
		t.Fatalf("ControllerExpandVolume of a block volume: %v", rsp)
	}
	must(cl.n.NodeExpandVolume(ctx, &csi.NodeExpandVolumeRequest{VolumeId: id, VolumePath: target, VolumeCapability: capOf(true)}))
	f, err = os.Open(target)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	end, err := f.Seek(0, 2)
	if err != nil || end != 96<<20 {
		t.Fatalf("the published device node ends at %d (%v), want %d", end, err, 96<<20)
	}
	got := make([]byte, len(pattern))
	if _, err := f.ReadAt(got, 0); err != nil || !bytes.Equal(got, pattern) {
		t.Fatalf("the bytes written before the expansion did not read back (%v)", err)
	}
	f.Close()
	unpublishUnstage(t, cl, id, staging, target)
	must(cl.c.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: id}))
}

//go:build vm

package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/thinctl/thinctl/internal/failpoint"
	"github.com/thinctl/thinctl/internal/testenv"
	"github.com/thinctl/thinctl/thinpool"
)

// process is thinctl-csi running as a process of its own (this test
// binary, re-executed with serveEnv).
type process struct {
	cmd  *exec.Cmd
	conn *grpc.ClientConn
	cl   clients
}

// spawn starts the driver on s's pool, with failpoints armed when fp is
// set, and waits until it answers.
func spawn(t *testing.T, s *server, fp string) *process {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), serveEnv+"="+strings.Join([]string{"--root", s.root, "--endpoint", s.sock,
		"--node-id", "node-1", "--path-root", s.pathRoot}, "\n"))
	if fp != "" {
		cmd.Env = append(cmd.Env, failpoint.Env+"="+fp)
	}
	cmd.Stderr = s.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient("unix://"+s.sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, conn: conn, cl: clients{csi.NewControllerClient(conn), csi.NewNodeClient(conn)}}
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := p.cl.n.NodeGetInfo(ctx, &csi.NodeGetInfoRequest{}, grpc.WaitForReady(true))
		cancel()
		if err == nil {
			return p
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("thinctl-csi did not answer in a minute: %v\n%s", err, s.log.String())
		}
	}
}

// stop ends the driver with SIGTERM.
func (p *process) stop(t *testing.T) {
	t.Helper()
	p.conn.Close()
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("thinctl-csi after SIGTERM: %v", err)
	}
}

// killedBy waits for the driver to die and fails unless a SIGKILL (the
// failpoint) ended it.
func (p *process) killedBy(t *testing.T, what string) {
	t.Helper()
	p.conn.Close()
	err := p.cmd.Wait()
	ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("%s did not SIGKILL the driver: %v", what, err)
	}
}

// newPoolServer makes a pool and the paths for a driver run as a process.
func newPoolServer(t *testing.T) *server {
	t.Helper()
	testenv.RequireDeviceMapper(t)
	testenv.RequireTool(t, "mkfs.ext4")
	s := &server{root: t.TempDir(), pathRoot: filepath.Join(t.TempDir(), "kubelet"), log: &testenv.LockedBuffer{}}
	if err := os.MkdirAll(filepath.Join(s.pathRoot, "staging"), 0o750); err != nil {
		t.Fatal(err)
	}
	p, err := thinpool.Init(context.Background(), s.root, testPool)
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	dir, err := os.MkdirTemp("/tmp", "csi")
	if err != nil {
		t.Fatal(err)
	}
	s.sock = filepath.Join(dir, "csi.sock")
	t.Cleanup(func() {
		os.RemoveAll(dir)
		if t.Failed() {
			t.Logf("thinctl-csi's log:\n%s", s.log.String())
		}
		checkAndDown(t, s.root)
	})
	return s
}

func TestADriverKilledMidRequestConvergesWhenTheCallIsRetried(t *testing.T) {
	onlyWithoutUdev(t)
	volReq := func(name string, block bool) *csi.CreateVolumeRequest {
		return &csi.CreateVolumeRequest{Name: name, VolumeCapabilities: []*csi.VolumeCapability{capOf(block)}}
	}
	for _, c := range []struct {
		name, point string
		call        func(ctx context.Context, cl clients, src, staging string) error
	}{
		{"CreateVolume", failpoint.TxAfterMessage, func(ctx context.Context, cl clients, _, _ string) error {
			_, err := cl.c.CreateVolume(ctx, volReq("v2", false))
			return err
		}},
		{"CreateVolumeOfABlockVolumeBeforeItsDiscard", failpoint.TxAfterCommit, func(ctx context.Context, cl clients, _, _ string) error {
			_, err := cl.c.CreateVolume(ctx, volReq("b", true))
			return err
		}},
		{"CreateSnapshot", failpoint.TxAfterMessage, func(ctx context.Context, cl clients, src, _ string) error {
			_, err := cl.c.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "s", SourceVolumeId: src})
			return err
		}},
		{"NodeStageVolume", failpoint.ActivateAfterLoad, func(ctx context.Context, cl clients, src, staging string) error {
			_, err := cl.n.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: src, VolumeCapability: capOf(false),
				StagingTargetPath: staging})
			return err
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newPoolServer(t)
			current = t
			ctx := ctxT(t)
			staging := filepath.Join(s.pathRoot, "staging")
			p := spawn(t, s, "")
			src := must(p.cl.c.CreateVolume(ctx, volReq("v1", false))).GetVolume().GetVolumeId()
			p.stop(t)

			p = spawn(t, s, c.point+"=kill")
			if err := c.call(ctx, p.cl, src, staging); err == nil {
				t.Fatalf("%s came back although %s should have killed the driver", c.name, c.point)
			}
			p.killedBy(t, c.point)

			p = spawn(t, s, "")
			for i := 0; i < 2; i++ { // the retry, and the kubelet's retry of that
				if err := c.call(ctx, p.cl, src, staging); err != nil {
					t.Fatalf("retry %d: %v", i+1, err)
				}
			}
			// One device per name: no orphan, no duplicate.
			pool, err := thinpool.Open(ctx, s.root, thinpool.OpenOptions{})
			if err != nil {
				t.Fatal(err)
			}
			labels, err := pool.DeviceLabels()
			pool.Close()
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]int{"volume": 1, "snapshot": 0}
			switch c.name {
			case "CreateSnapshot":
				want["snapshot"] = 1
			case "NodeStageVolume":
			default:
				want["volume"] = 2
			}
			got := map[string]int{}
			for id, l := range labels {
				got[l["csi.thinctl.io/kind"]]++
				if l["csi.thinctl.io/state"] != "ready" {
					t.Errorf("device %s is left %q", id, l["csi.thinctl.io/state"])
				}
			}
			if got["volume"] != want["volume"] || got["snapshot"] != want["snapshot"] || len(got) > 2 {
				t.Fatalf("devices by kind %v, want %v", got, want)
			}
			// Tear down through the driver; checkAndDown then finds nothing left.
			must(p.cl.n.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: src, StagingTargetPath: staging}))
			snaps := must(p.cl.c.ListSnapshots(ctx, &csi.ListSnapshotsRequest{}))
			for _, e := range snaps.GetEntries() {
				must(p.cl.c.DeleteSnapshot(ctx, &csi.DeleteSnapshotRequest{SnapshotId: e.GetSnapshot().GetSnapshotId()}))
			}
			vols := must(p.cl.c.ListVolumes(ctx, &csi.ListVolumesRequest{}))
			for _, e := range vols.GetEntries() {
				must(p.cl.c.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: e.GetVolume().GetVolumeId()}))
			}
			p.stop(t)
		})
	}
}

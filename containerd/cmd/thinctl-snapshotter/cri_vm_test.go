//go:build vm

package main

import (
	"context"
	"crypto/md5"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/thinctl/thinctl/internal/testenv"
)

// criConfig is the CRI plugin's part of containerd 1.6's config: images
// unpacked by thinctl, pulled over plain HTTP from the guest's registry,
// runc through the v2 shim, no AppArmor (the guest has no apparmor_parser)
// and no pivot_root (the guest's / is its initramfs, which pivot_root
// refuses with EINVAL; runc moves the root and chroots instead). A real
// node needs neither of the last two settings.
func criConfig(registry, sandboxImage string) string {
	return fmt.Sprintf(`
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "thinctl"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        NoPivotRoot = true
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors.%q]
    endpoint = ["http://%s"]
`, sandboxImage, registry, registry)
}

// TestAPodRunsOnThinSnapshotsThroughCRI makes the kubelet's CRI calls, in
// its order, against Debian's containerd 1.6.20 whose CRI plugin unpacks
// into thinctl-snapshotter: pod sandbox (host network), image pull from a
// registry on loopback, container create and start with runc, logs, exec,
// stop and removal of everything, and then containerd's collection must
// leave only the snapshotter's root device.
func TestAPodRunsOnThinSnapshotsThroughCRI(t *testing.T) {
	containerd := requireNodeBoot(t, "containerd-shim-runc-v2", "runc")
	registryBin := testenv.RequireTool(t, "docker-registry")
	mountCgroup2(t)
	for _, f := range []string{"/etc/hosts", "/etc/resolv.conf"} {
		// The CRI plugin copies both into every sandbox.
		if _, err := os.Stat(f); err != nil {
			writeFile(t, f, "")
		}
	}

	reg := startRegistry(t, registryBin)
	pauseBlobs, _ := ociImage(t, pauseImage(), map[string]any{"Entrypoint": []string{"/pause"}})
	pauseRef := reg.push(t, "thinctl/pause", "1", pauseBlobs)
	appLayers, big := criTestImage(t)
	appBlobs, _ := ociImage(t, appLayers, map[string]any{"Env": []string{"PATH=/bin"}, "Cmd": []string{"/bin/sh"}})
	appRef := reg.push(t, "thinctl/app", "1", appBlobs)

	r := newRig(t)
	r.cri = true
	r.startSnapshotter()
	r.startContainerd(containerd, criConfig(reg.host, pauseRef))
	base := r.records()

	conn, err := grpc.NewClient("unix://"+r.ctrdSock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rt := runtime.NewRuntimeServiceClient(conn)
	img := runtime.NewImageServiceClient(conn)
	call := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), 3*time.Minute)
	}
	ctx, cancel := call()
	defer cancel()
	ver, err := rt.Version(ctx, &runtime.VersionRequest{})
	if err != nil {
		t.Fatalf("CRI Version: %v", err)
	}
	t.Logf("CRI: %s %s, API %s", ver.RuntimeName, ver.RuntimeVersion, ver.RuntimeApiVersion)

	logDir := t.TempDir()
	nsOpts := &runtime.NamespaceOption{Network: runtime.NamespaceMode_NODE, Pid: runtime.NamespaceMode_CONTAINER, Ipc: runtime.NamespaceMode_POD}
	podCfg := &runtime.PodSandboxConfig{
		Metadata:     &runtime.PodSandboxMetadata{Name: "thin", Uid: "3c1e7d2a-thinctl", Namespace: "default"},
		LogDirectory: logDir, // no Hostname: the kubelet sets none for a pod on the host's network
		Linux: &runtime.LinuxPodSandboxConfig{
			CgroupParent:    "/thinctl-pods",
			SecurityContext: &runtime.LinuxSandboxSecurityContext{NamespaceOptions: nsOpts},
		},
	}
	var podID, ctrID string
	// createContainer makes the kubelet's CreateContainer call for a
	// container of the test image in the pod, running script with sh,
	// logging to logDir/NAME.log.
	createContainer := func(t *testing.T, name, script string) string {
		t.Helper()
		resp, err := rt.CreateContainer(ctx, &runtime.CreateContainerRequest{
			PodSandboxId:  podID,
			SandboxConfig: podCfg,
			Config: &runtime.ContainerConfig{
				Metadata: &runtime.ContainerMetadata{Name: name},
				Image:    &runtime.ImageSpec{Image: appRef},
				Command:  []string{"/bin/sh", "-c", script},
				LogPath:  name + ".log",
				Linux: &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{
					NamespaceOptions: nsOpts,
				}},
			},
		})
		if err != nil {
			t.Fatalf("CreateContainer %s: %v", name, err)
		}
		return resp.ContainerId
	}
	// waitLog waits up to a minute for the CRI log of container name to
	// hold as many complete lines as want and compares them.
	waitLog := func(t *testing.T, name string, want ...string) {
		t.Helper()
		var got []string
		for t0 := time.Now(); time.Since(t0) < 60*time.Second; time.Sleep(200 * time.Millisecond) {
			if got = criLogLines(t, filepath.Join(logDir, name+".log")); len(got) >= len(want) {
				break
			}
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("the CRI log of %s reads %q; want %q", name, got, want)
		}
	}
	step := func(name string, f func(t *testing.T)) {
		t0 := time.Now()
		if !t.Run(name, f) {
			t.FailNow()
		}
		t.Logf("%s: %v", name, time.Since(t0).Round(time.Millisecond))
	}

	step("RunPodSandbox pulls the pause image from the registry and starts it on a thin snapshot", func(t *testing.T) {
		resp, err := rt.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: podCfg, RuntimeHandler: "runc"})
		if err != nil {
			t.Fatalf("RunPodSandbox: %v", err)
		}
		podID = resp.PodSandboxId
		st, err := rt.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: podID})
		if err != nil || st.Status.State != runtime.PodSandboxState_SANDBOX_READY {
			t.Fatalf("PodSandboxStatus: %v (%v)", st, err)
		}
		// The pause image's layer and the sandbox container's own snapshot.
		if n := r.records() - base; n != 2 {
			t.Fatalf("%d new thin devices after RunPodSandbox; want 2 (the pause layer, the sandbox's snapshot)", n)
		}
	})
	step("PullImage unpacks the image's four layers into thin devices", func(t *testing.T) {
		resp, err := img.PullImage(ctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: appRef}, SandboxConfig: podCfg})
		if err != nil {
			t.Fatalf("PullImage %s: %v", appRef, err)
		}
		t.Logf("pulled %s as %s", appRef, resp.ImageRef)
		if n := r.records() - base; n != 2+4 {
			t.Fatalf("%d new thin devices after the pull; want 6 (two of the pod's, four layers)", n)
		}
	})
	step("CreateContainer and StartContainer run it on a thin snapshot; its output comes back through the CRI log", func(t *testing.T) {
		ctrID = createContainer(t, "writer", `trap 'exit 0' TERM
echo "written by the container" > /rootfs-file
echo "read back: $(cat /rootfs-file)"
echo "hello: $(cat /etc/hello)"
while :; do sleep 1; done`)
		if n := r.records() - base; n != 2+4+1 {
			t.Fatalf("%d new thin devices after CreateContainer; want 7 (its own snapshot)", n)
		}
		if _, err := rt.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: ctrID}); err != nil {
			t.Fatalf("StartContainer: %v", err)
		}
		waitLog(t, "writer", "read back: written by the container", "hello: hello from layer 3")
		st, err := rt.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: ctrID})
		if err != nil || st.Status.State != runtime.ContainerState_CONTAINER_RUNNING {
			t.Fatalf("ContainerStatus: %v (%v)", st, err)
		}
	})
	step("ExecSync sees the image as its layers make it, on a thin device", func(t *testing.T) {
		script := `echo "file: $(cat /rootfs-file)"
echo "gone: $(ls -A /gone)"
echo "opq: $(ls -A /opq)"
echo "links: $(stat -c %h /l2/target)"
[ "$(stat -c %i /l2/target)" = "$(stat -c %i /l2/hardlink)" ] && echo "hard link: one inode"
echo "symlink: $(readlink /etc/link)"
echo "big: $(md5sum /data/big)"
cat /proc/self/mountinfo`
		resp, err := rt.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: ctrID, Cmd: []string{"/bin/sh", "-c", script}, Timeout: 120})
		if err != nil {
			t.Fatalf("ExecSync: %v", err)
		}
		if resp.ExitCode != 0 {
			t.Fatalf("ExecSync exited %d: %s%s", resp.ExitCode, resp.Stdout, resp.Stderr)
		}
		lines := strings.Split(string(resp.Stdout), "\n")
		want := []string{
			"file: written by the container",
			"gone: y",
			"opq: new",
			"links: 2",
			"hard link: one inode",
			"symlink: hello",
			fmt.Sprintf("big: %x  /data/big", md5.Sum(big)),
		}
		if len(lines) < len(want) || strings.Join(lines[:len(want)], "\n") != strings.Join(want, "\n") {
			t.Fatalf("ExecSync printed\n%s\nwant first\n%s\nstderr: %s", resp.Stdout, strings.Join(want, "\n"), resp.Stderr)
		}
		root := ""
		for _, l := range lines[len(want):] {
			f := strings.Fields(l)
			if len(f) > 9 && f[4] == "/" {
				for i, x := range f {
					if x == "-" && i+2 < len(f) {
						root = f[i+1] + " " + f[i+2]
					}
				}
			}
		}
		if !strings.HasPrefix(root, "ext4 /dev/mapper/thinctl-") {
			t.Fatalf("the container's / is %q; want an ext4 mount of a thinctl device\n%s", root, resp.Stdout)
		}
		t.Logf("the container's root: %s", root)
	})
	var secondID string
	step("a SIGKILLed snapshotter leaves the running container's root usable, and restarted it serves the next container", func(t *testing.T) {
		r.snap.Process.Kill()
		r.snap.Wait()
		r.snap = nil
		resp, err := rt.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: ctrID, Timeout: 60,
			Cmd: []string{"/bin/sh", "-c", "echo 'after the kill' > /after && cat /after /rootfs-file"}})
		if err != nil || resp.ExitCode != 0 || string(resp.Stdout) != "after the kill\nwritten by the container\n" {
			t.Fatalf("ExecSync with the snapshotter dead: %v; exit %v, stdout %q, stderr %q", err, resp.GetExitCode(), resp.GetStdout(), resp.GetStderr())
		}
		r.startSnapshotter()
		// containerd's proxy connection comes back by itself, after
		// grpc's backoff; a kubelet retries a failed call, the test waits.
		for t0 := time.Now(); ; time.Sleep(100 * time.Millisecond) {
			out, err := exec.Command("ctr", "--address", r.ctrdSock, "--namespace", "k8s.io", "snapshots", "--snapshotter", "thinctl", "ls").CombinedOutput()
			if err == nil {
				t.Logf("containerd served by the restarted snapshotter %v after its start", time.Since(t0).Round(time.Millisecond))
				break
			}
			if time.Since(t0) > 60*time.Second {
				t.Fatalf("containerd could not reach the restarted snapshotter for 60 s: %v: %s", err, out)
			}
		}
		secondID = createContainer(t, "second", `echo "hello: $(cat /etc/hello)"; cat /rootfs-file 2>/dev/null || echo "no /rootfs-file here"`)
		if n := r.records() - base; n != 2+4+2 {
			t.Fatalf("%d new thin devices after the second CreateContainer; want 8", n)
		}
		if _, err := rt.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: secondID}); err != nil {
			t.Fatalf("StartContainer after the restart: %v", err)
		}
		waitLog(t, "second", "hello: hello from layer 3", "no /rootfs-file here")
		if _, err := rt.RemoveContainer(ctx, &runtime.RemoveContainerRequest{ContainerId: secondID}); err != nil {
			t.Fatalf("RemoveContainer of the exited second container: %v", err)
		}
	})
	step("StopContainer ends it with SIGTERM and RemoveContainer removes it", func(t *testing.T) {
		if _, err := rt.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: ctrID, Timeout: 30}); err != nil {
			t.Fatalf("StopContainer: %v", err)
		}
		st, err := rt.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: ctrID})
		if err != nil || st.Status.State != runtime.ContainerState_CONTAINER_EXITED || st.Status.ExitCode != 0 {
			t.Fatalf("ContainerStatus after the stop: %v (%v); want exited 0 (its TERM trap)", st, err)
		}
		if _, err := rt.RemoveContainer(ctx, &runtime.RemoveContainerRequest{ContainerId: ctrID}); err != nil {
			t.Fatalf("RemoveContainer: %v", err)
		}
	})
	step("StopPodSandbox and RemovePodSandbox", func(t *testing.T) {
		if _, err := rt.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: podID}); err != nil {
			t.Fatalf("StopPodSandbox: %v", err)
		}
		if _, err := rt.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: podID}); err != nil {
			t.Fatalf("RemovePodSandbox: %v", err)
		}
		if l, err := rt.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{}); err != nil || len(l.Items) != 0 {
			t.Fatalf("ListPodSandbox after the removal: %v (%v)", l, err)
		}
	})
	step("RemoveImage and containerd's collection leave only the snapshotter's root device", func(t *testing.T) {
		for _, ref := range []string{appRef, pauseRef} {
			if _, err := img.RemoveImage(ctx, &runtime.RemoveImageRequest{Image: &runtime.ImageSpec{Image: ref}}); err != nil {
				t.Fatalf("RemoveImage %s: %v", ref, err)
			}
		}
		for t0 := time.Now(); r.records() != 1 && time.Since(t0) < 60*time.Second; time.Sleep(200 * time.Millisecond) {
		}
		out, _ := exec.Command("ctr", "--address", r.ctrdSock, "--namespace", "k8s.io", "snapshots", "--snapshotter", "thinctl", "ls").CombinedOutput()
		if n := r.records(); n != 1 {
			t.Fatalf("%d device records after removing everything; want only the root device\n%s", n, out)
		}
		if strings.Count(strings.TrimSpace(string(out)), "\n") != 0 {
			t.Fatalf("containerd still lists snapshots in k8s.io:\n%s", out)
		}
	})
	r.stopSnapshotter()
	step("registry, pool metadata (thin_dump) and live devices agree at the end", func(t *testing.T) {
		checkPoolAgrees(t, r.root, 1)
	})
}

// criLogLines reads a CRI log file ("TIME STREAM TAG CONTENT" per line)
// and returns the contents of its complete lines.
func criLogLines(t *testing.T, file string) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		return nil
	}
	var out []string
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		f := strings.SplitN(l, " ", 4)
		if len(f) == 4 && f[2] == "F" {
			out = append(out, f[3])
		}
	}
	return out
}

// mountCgroup2 mounts the cgroup2 hierarchy, which runc needs, unless the
// guest has it already.
func mountCgroup2(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return
	}
	if out, err := exec.Command("mount", "-t", "cgroup2", "none", "/sys/fs/cgroup").CombinedOutput(); err != nil {
		t.Fatalf("mount cgroup2: %v: %s", err, out)
	}
}

//go:build vm

package main

import (
	"crypto/md5"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
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
	n := newCRINode(t)
	rt, ctx, base := n.rt, n.ctx, n.base
	pod := n.newPod("thin")
	var podID, ctrID string
	step(t, "RunPodSandbox pulls the pause image from the registry and starts it on a thin snapshot", func(t *testing.T) {
		podID = n.runPod(t, pod)
		// The pause image's layer and the sandbox container's own snapshot.
		if got := n.r.records() - base; got != 2 {
			t.Fatalf("%d new thin devices after RunPodSandbox; want 2 (the pause layer, the sandbox's snapshot)", got)
		}
	})
	step(t, "PullImage unpacks the image's four layers into thin devices", func(t *testing.T) {
		resp, err := n.img.PullImage(ctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: n.appRef}, SandboxConfig: pod})
		if err != nil {
			t.Fatalf("PullImage %s: %v", n.appRef, err)
		}
		t.Logf("pulled %s as %s", n.appRef, resp.ImageRef)
		if got := n.r.records() - base; got != 2+4 {
			t.Fatalf("%d new thin devices after the pull; want 6 (two of the pod's, four layers)", got)
		}
	})
	step(t, "CreateContainer and StartContainer run it on a thin snapshot; its output comes back through the CRI log", func(t *testing.T) {
		ctrID = n.createContainer(t, podID, pod, "writer", `trap 'exit 0' TERM
echo "written by the container" > /rootfs-file
echo "read back: $(cat /rootfs-file)"
echo "hello: $(cat /etc/hello)"
while :; do sleep 1; done`)
		if got := n.r.records() - base; got != 2+4+1 {
			t.Fatalf("%d new thin devices after CreateContainer; want 7 (its own snapshot)", got)
		}
		if _, err := rt.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: ctrID}); err != nil {
			t.Fatalf("StartContainer: %v", err)
		}
		n.waitLog(t, pod, "writer", "read back: written by the container", "hello: hello from layer 3")
		st, err := rt.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: ctrID})
		if err != nil || st.Status.State != runtime.ContainerState_CONTAINER_RUNNING {
			t.Fatalf("ContainerStatus: %v (%v)", st, err)
		}
	})
	step(t, "ExecSync sees the image as its layers make it, on a thin device", func(t *testing.T) {
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
			fmt.Sprintf("big: %x  /data/big", md5.Sum(n.big)),
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
	step(t, "a SIGKILLed snapshotter leaves the running container's root usable, and restarted it serves the next container", func(t *testing.T) {
		n.killSnapshotter()
		resp, err := rt.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: ctrID, Timeout: 60,
			Cmd: []string{"/bin/sh", "-c", "echo 'after the kill' > /after && cat /after /rootfs-file"}})
		if err != nil || resp.ExitCode != 0 || string(resp.Stdout) != "after the kill\nwritten by the container\n" {
			t.Fatalf("ExecSync with the snapshotter dead: %v; exit %v, stdout %q, stderr %q", err, resp.GetExitCode(), resp.GetStdout(), resp.GetStderr())
		}
		n.restartSnapshotter(t)
		second := n.createContainer(t, podID, pod, "second", `echo "hello: $(cat /etc/hello)"; cat /rootfs-file 2>/dev/null || echo "no /rootfs-file here"`)
		if got := n.r.records() - base; got != 2+4+2 {
			t.Fatalf("%d new thin devices after the second CreateContainer; want 8", got)
		}
		if _, err := rt.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: second}); err != nil {
			t.Fatalf("StartContainer after the restart: %v", err)
		}
		n.waitLog(t, pod, "second", "hello: hello from layer 3", "no /rootfs-file here")
		if _, err := rt.RemoveContainer(ctx, &runtime.RemoveContainerRequest{ContainerId: second}); err != nil {
			t.Fatalf("RemoveContainer of the exited second container: %v", err)
		}
	})
	step(t, "StopContainer ends it with SIGTERM and RemoveContainer removes it", func(t *testing.T) {
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
	step(t, "StopPodSandbox and RemovePodSandbox", func(t *testing.T) {
		n.stopAndRemovePod(t, podID)
	})
	step(t, "RemoveImage and containerd's collection leave only the snapshotter's root device; Check and thin_dump agree", func(t *testing.T) {
		n.removeImagesAndCheck(t)
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

//go:build vm

package main

import (
	"context"
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

// criNode is a Kubernetes node without its kubelet, in the guest: the
// registry with the pause and test images, thinctl-snapshotter, containerd
// with its CRI plugin on, and a CRI client making the kubelet's calls.
type criNode struct {
	r          *rig
	containerd string
	registry   string // host:port
	pauseRef   string
	appRef     string
	big        []byte // the test image's /data/big
	base       int    // device records once everything is up (the root device)
	conn       *grpc.ClientConn
	rt         runtime.RuntimeServiceClient
	img        runtime.ImageServiceClient
	ctx        context.Context
	logDir     string
	// config, when set, is the containerd configuration startContainerd
	// writes instead of criConfig's (the CRI benchmark switches the CRI
	// plugin's snapshotter with it).
	config string
}

// podNamespaces: the pod on the host's network (no CNI), as the test's
// pods are.
var podNamespaces = &runtime.NamespaceOption{Network: runtime.NamespaceMode_NODE, Pid: runtime.NamespaceMode_CONTAINER, Ipc: runtime.NamespaceMode_POD}

func newCRINode(t *testing.T) *criNode {
	t.Helper()
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
	appLayers, big := criTestImage(t)
	appBlobs, _ := ociImage(t, appLayers, map[string]any{"Env": []string{"PATH=/bin"}, "Cmd": []string{"/bin/sh"}})
	n := &criNode{containerd: containerd, registry: reg.host, big: big, logDir: t.TempDir(),
		pauseRef: reg.push(t, "thinctl/pause", "1", pauseBlobs),
		appRef:   reg.push(t, "thinctl/app", "1", appBlobs),
	}
	n.r = newRig(t)
	n.r.cri = true
	n.r.startSnapshotter()
	n.startContainerd(t)
	n.base = n.r.records()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	n.ctx = ctx
	ver, err := n.rt.Version(ctx, &runtime.VersionRequest{})
	if err != nil {
		t.Fatalf("CRI Version: %v", err)
	}
	t.Logf("CRI: %s %s, API %s", ver.RuntimeName, ver.RuntimeVersion, ver.RuntimeApiVersion)
	return n
}

// startContainerd (re)starts containerd with the CRI config and connects a
// new CRI client to it.
func (n *criNode) startContainerd(t *testing.T) {
	t.Helper()
	cfg := n.config
	if cfg == "" {
		cfg = criConfig(n.registry, n.pauseRef)
	}
	n.r.startContainerd(n.containerd, cfg)
	if n.conn != nil {
		n.conn.Close()
	}
	conn, err := grpc.NewClient("unix://"+n.r.ctrdSock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	n.r.t.Cleanup(func() { conn.Close() }) // the whole test's, not a step's
	n.conn, n.rt, n.img = conn, runtime.NewRuntimeServiceClient(conn), runtime.NewImageServiceClient(conn)
	// The CRI plugin answers "server is not initialized yet" for a moment
	// after containerd serves; the kubelet waits for its Status, so does
	// the test.
	for t0 := time.Now(); ; time.Sleep(100 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := n.rt.Status(ctx, &runtime.StatusRequest{})
		cancel()
		if err == nil {
			return
		}
		if time.Since(t0) > 60*time.Second {
			t.Fatalf("the CRI plugin did not answer Status within 60 s: %v", err)
		}
	}
}

// newPod is a pod's config (its logs under logDir/name) as the kubelet
// sends it for a pod on the host's network: no hostname.
func (n *criNode) newPod(name string) *runtime.PodSandboxConfig {
	return &runtime.PodSandboxConfig{
		Metadata:     &runtime.PodSandboxMetadata{Name: name, Uid: name + "-3c1e7d2a", Namespace: "default"},
		LogDirectory: filepath.Join(n.logDir, name),
		Linux: &runtime.LinuxPodSandboxConfig{
			CgroupParent:    "/thinctl-pods",
			SecurityContext: &runtime.LinuxSandboxSecurityContext{NamespaceOptions: podNamespaces},
		},
	}
}

// runPod makes the RunPodSandbox call and returns the sandbox's id.
func (n *criNode) runPod(t *testing.T, cfg *runtime.PodSandboxConfig) string {
	t.Helper()
	resp, err := n.rt.RunPodSandbox(n.ctx, &runtime.RunPodSandboxRequest{Config: cfg, RuntimeHandler: "runc"})
	if err != nil {
		t.Fatalf("RunPodSandbox %s: %v", cfg.Metadata.Name, err)
	}
	st, err := n.rt.PodSandboxStatus(n.ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: resp.PodSandboxId})
	if err != nil || st.Status.State != runtime.PodSandboxState_SANDBOX_READY {
		t.Fatalf("PodSandboxStatus: %v (%v)", st, err)
	}
	return resp.PodSandboxId
}

// createContainerErr makes the kubelet's CreateContainer call for a
// container of the test image in the pod, running script with sh.
func (n *criNode) createContainerErr(podID string, pod *runtime.PodSandboxConfig, name, script string) (string, error) {
	resp, err := n.rt.CreateContainer(n.ctx, &runtime.CreateContainerRequest{
		PodSandboxId:  podID,
		SandboxConfig: pod,
		Config: &runtime.ContainerConfig{
			Metadata: &runtime.ContainerMetadata{Name: name},
			Image:    &runtime.ImageSpec{Image: n.appRef},
			Command:  []string{"/bin/sh", "-c", script},
			LogPath:  name + ".log",
			Linux: &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{
				NamespaceOptions: podNamespaces,
			}},
		},
	})
	return resp.GetContainerId(), err
}

func (n *criNode) createContainer(t *testing.T, podID string, pod *runtime.PodSandboxConfig, name, script string) string {
	t.Helper()
	id, err := n.createContainerErr(podID, pod, name, script)
	if err != nil {
		t.Fatalf("CreateContainer %s: %v", name, err)
	}
	return id
}

// waitLog waits up to a minute for the CRI log of container name in pod to
// hold as many complete lines as want and compares them.
func (n *criNode) waitLog(t *testing.T, pod *runtime.PodSandboxConfig, name string, want ...string) {
	t.Helper()
	var got []string
	for t0 := time.Now(); time.Since(t0) < 60*time.Second; time.Sleep(200 * time.Millisecond) {
		if got = criLogLines(t, filepath.Join(pod.LogDirectory, name+".log")); len(got) >= len(want) {
			break
		}
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("the CRI log of %s reads %q; want %q", name, got, want)
	}
}

// killSnapshotter SIGKILLs thinctl-snapshotter.
func (n *criNode) killSnapshotter() {
	n.r.snap.Process.Kill()
	n.r.snap.Wait()
	n.r.snap = nil
}

// restartSnapshotter starts thinctl-snapshotter (with env added) and waits
// until containerd's proxy connection to it works again: it comes back by
// itself after grpc's backoff; a kubelet retries a failed call, the test
// waits.
func (n *criNode) restartSnapshotter(t *testing.T, env ...string) {
	t.Helper()
	n.r.snapEnv = env
	n.r.startSnapshotter()
	for t0 := time.Now(); ; time.Sleep(100 * time.Millisecond) {
		out, err := n.ctrK8s("snapshots", "--snapshotter", "thinctl", "ls")
		if err == nil {
			t.Logf("containerd served by the restarted snapshotter %v after its start", time.Since(t0).Round(time.Millisecond))
			return
		}
		if time.Since(t0) > 60*time.Second {
			t.Fatalf("containerd could not reach the restarted snapshotter for 60 s: %v: %s", err, out)
		}
	}
}

// ctrK8s runs ctr in containerd's k8s.io namespace, where CRI keeps
// everything.
func (n *criNode) ctrK8s(args ...string) (string, error) {
	out, err := exec.Command("ctr", append([]string{"--address", n.r.ctrdSock, "--namespace", "k8s.io"}, args...)...).CombinedOutput()
	return string(out), err
}

// stopAndRemovePod stops and removes a pod and its containers, as the
// kubelet does when a pod is deleted.
func (n *criNode) stopAndRemovePod(t *testing.T, podID string) {
	t.Helper()
	if _, err := n.rt.StopPodSandbox(n.ctx, &runtime.StopPodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatalf("StopPodSandbox: %v", err)
	}
	if _, err := n.rt.RemovePodSandbox(n.ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatalf("RemovePodSandbox: %v", err)
	}
}

// removeImagesAndCheck removes both images through CRI and expects
// containerd's collection to leave only the snapshotter's root device, no
// snapshot listed, no thinctl device mounted; then it stops the
// snapshotter and expects thinpool's Check and thin_dump to agree.
func (n *criNode) removeImagesAndCheck(t *testing.T) {
	t.Helper()
	if l, err := n.rt.ListPodSandbox(n.ctx, &runtime.ListPodSandboxRequest{}); err != nil || len(l.Items) != 0 {
		t.Fatalf("ListPodSandbox before the images' removal: %v (%v)", l, err)
	}
	if l, err := n.rt.ListContainers(n.ctx, &runtime.ListContainersRequest{}); err != nil || len(l.Containers) != 0 {
		t.Fatalf("ListContainers before the images' removal: %v (%v)", l, err)
	}
	for _, ref := range []string{n.appRef, n.pauseRef} {
		if _, err := n.img.RemoveImage(n.ctx, &runtime.RemoveImageRequest{Image: &runtime.ImageSpec{Image: ref}}); err != nil {
			t.Fatalf("RemoveImage %s: %v", ref, err)
		}
	}
	for t0 := time.Now(); n.r.records() != n.base && time.Since(t0) < 60*time.Second; time.Sleep(200 * time.Millisecond) {
	}
	out, _ := n.ctrK8s("snapshots", "--snapshotter", "thinctl", "ls")
	if got := n.r.records(); got != n.base {
		t.Fatalf("%d device records after removing everything; want only the root device\n%s", got, out)
	}
	if strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Fatalf("containerd still lists snapshots in k8s.io:\n%s", out)
	}
	if b, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(b), n.r.devPrefix) {
		t.Fatalf("a device of the pool (%s...) is still mounted:\n%s", n.r.devPrefix, b)
	}
	n.r.stopSnapshotter()
	checkPoolAgrees(t, n.r.root, 1)
}

// step runs f as subtest name, stops the test when it fails and logs how
// long it took.
func step(t *testing.T, name string, f func(t *testing.T)) {
	t.Helper()
	t0 := time.Now()
	if !t.Run(name, f) {
		t.FailNow()
	}
	t.Logf("%s: %v", name, time.Since(t0).Round(time.Millisecond))
}

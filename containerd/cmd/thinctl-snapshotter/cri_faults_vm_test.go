//go:build vm

package main

import (
	"syscall"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/thinctl/thinctl/internal/failpoint"
)

// TestAPodGoesOnAfterEachKillOnItsPath kills, one after the other, what a
// node's pod depends on at the moment it is used: thinctl-snapshotter in
// the middle of a pull's unpack and in the middle of CreateContainer's
// Prepare (a failpoint after the pool's create_snap), and containerd during
// StartContainer. After each the kubelet's next calls must work, and at the
// end containerd's collection must leave nothing behind.
func TestAPodGoesOnAfterEachKillOnItsPath(t *testing.T) {
	if !failpoint.Compiled {
		t.Skip("needs a binary built with -tags failpoints (tests/vm/run.sh builds so)")
	}
	n := newCRINode(t)
	pod := n.newPod("faults")
	var podID string
	step(t, "thinctl-snapshotter SIGKILLed during a pull's unpack; the pull run again completes", func(t *testing.T) {
		podID = n.runPod(t, pod)
		before := n.r.records()
		done := make(chan error, 1)
		go func() {
			_, err := n.img.PullImage(n.ctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: n.appRef}, SandboxConfig: pod})
			done <- err
		}()
		for t0 := time.Now(); n.r.records() < before+2 && time.Since(t0) < 120*time.Second; time.Sleep(20 * time.Millisecond) {
		}
		made := n.r.records() - before
		n.killSnapshotter()
		err := <-done
		if made >= 4 || err == nil {
			t.Fatalf("the pull was done before the kill (%d of 4 layers' devices, PullImage: %v)", made, err)
		}
		t.Logf("SIGKILL with %d of 4 layers' devices made; PullImage failed: %v", made, err)
		n.restartSnapshotter(t)
		if _, err := n.img.PullImage(n.ctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: n.appRef}, SandboxConfig: pod}); err != nil {
			t.Fatalf("PullImage after the restart: %v", err)
		}
	})
	script := `echo "hello: $(cat /etc/hello)"; echo "gone: $(ls -A /gone)"`
	step(t, "thinctl-snapshotter killed inside CreateContainer's Prepare; CreateContainer run again completes and the container runs", func(t *testing.T) {
		n.killSnapshotter()
		n.restartSnapshotter(t, failpoint.Env+"="+failpoint.TxAfterMessage+"=kill")
		snap := n.r.snap
		if _, err := n.createContainerErr(podID, pod, "app", script); err == nil {
			t.Fatal("CreateContainer succeeded although the snapshotter was to die in its Prepare")
		} else {
			t.Logf("CreateContainer with the snapshotter killed in its Prepare: %v", err)
		}
		snap.Wait()
		if ws, ok := snap.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("the snapshotter ended with %v, not by the failpoint's SIGKILL", snap.ProcessState)
		}
		n.r.snap = nil
		n.restartSnapshotter(t)
		id := n.createContainer(t, podID, pod, "app", script)
		if _, err := n.rt.StartContainer(n.ctx, &runtime.StartContainerRequest{ContainerId: id}); err != nil {
			t.Fatalf("StartContainer: %v", err)
		}
		n.waitLog(t, pod, "app", "hello: hello from layer 3", "gone: y")
		n.stopAndRemoveContainer(t, id)
	})
	step(t, "containerd SIGKILLed during StartContainer; restarted, the container is stopped and removed and a new one runs", func(t *testing.T) {
		id := n.createContainer(t, podID, pod, "started", `trap 'exit 0' TERM; echo up; while :; do sleep 1; done`)
		done := make(chan error, 1)
		go func() {
			_, err := n.rt.StartContainer(n.ctx, &runtime.StartContainerRequest{ContainerId: id})
			done <- err
		}()
		time.Sleep(300 * time.Millisecond)
		n.r.containerd.Process.Kill()
		n.r.containerd.Wait()
		t.Logf("StartContainer with containerd killed 300 ms into it: %v", <-done)
		n.startContainerd(t)
		st, err := n.rt.ContainerStatus(n.ctx, &runtime.ContainerStatusRequest{ContainerId: id})
		if err != nil {
			t.Fatalf("ContainerStatus after containerd's restart: %v", err)
		}
		t.Logf("after containerd's restart the container is %v", st.Status.State)
		n.stopAndRemoveContainer(t, id)
		again := n.createContainer(t, podID, pod, "started-again", `echo up again`)
		if _, err := n.rt.StartContainer(n.ctx, &runtime.StartContainerRequest{ContainerId: again}); err != nil {
			t.Fatalf("StartContainer of a new container: %v", err)
		}
		n.waitLog(t, pod, "started-again", "up again")
		n.stopAndRemoveContainer(t, again)
	})
	step(t, "the pod removed, then a new pod runs a container", func(t *testing.T) {
		n.stopAndRemovePod(t, podID)
		pod2 := n.newPod("faults-again")
		id2 := n.runPod(t, pod2)
		c := n.createContainer(t, id2, pod2, "app", script)
		if _, err := n.rt.StartContainer(n.ctx, &runtime.StartContainerRequest{ContainerId: c}); err != nil {
			t.Fatalf("StartContainer in the new pod: %v", err)
		}
		n.waitLog(t, pod2, "app", "hello: hello from layer 3", "gone: y")
		n.stopAndRemovePod(t, id2)
	})
	step(t, "RemoveImage and containerd's collection leave only the snapshotter's root device; Check and thin_dump agree", func(t *testing.T) {
		n.removeImagesAndCheck(t)
	})
}

// stopAndRemoveContainer stops and removes container id again until it
// converges, as the kubelet does: containerd can answer "ttrpc: closed"
// while its shim goes away under it (a container that has just exited, or
// a shim a killed containerd started that the restarted one is still
// reconnecting to), which is containerd's business, not the snapshotter's.
func (n *criNode) stopAndRemoveContainer(t *testing.T, id string) {
	t.Helper()
	var err error
	for try := 1; try <= 10; try++ {
		if _, err = n.rt.StopContainer(n.ctx, &runtime.StopContainerRequest{ContainerId: id, Timeout: 10}); err == nil {
			_, err = n.rt.RemoveContainer(n.ctx, &runtime.RemoveContainerRequest{ContainerId: id})
		}
		if err == nil {
			return
		}
		t.Logf("stop and remove container %s, try %d: %v", id, try, err)
		time.Sleep(time.Second)
	}
	t.Fatalf("container %s could not be stopped and removed in 10 tries: %v", id, err)
}

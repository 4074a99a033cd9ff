//go:build vm

package main

import (
	"context"
	"flag"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	leasesapi "github.com/containerd/containerd/api/services/leases/v1"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/thinctl/thinctl/internal/testenv"
)

// The CRI benchmark's sizes: samples per snapshotter and round, rounds
// (the snapshotters' order rotates between them), the pulled image.
const (
	criBenchRounds      = 2
	criBenchPods        = 4 // measured pod starts per snapshotter and round
	criBenchPulls       = 3 // measured pulls per snapshotter and round
	criBenchPullLayers  = 10
	criBenchPullLayerKB = 512
)

// criSnapshotters are the snapshotters the CRI benchmark compares, by the
// names containerd's CRI config takes.
var criSnapshotters = []string{"thinctl", "devmapper", "overlayfs"}

// TestBenchCRIPodsOnThreeSnapshotters measures, in one containerd (Debian's
// 1.6.20 with its CRI plugin), what a kubelet waits for with
// thinctl-snapshotter, containerd's devmapper snapshotter (on its own thin
// pool, as TestBenchVsContainerdDevmapper makes it) and overlayfs: a pod's
// start (RunPodSandbox, CreateContainer, StartContainer until the container
// is running, with the images already pulled), the container's create and
// start alone, and PullImage of a 10-layer image from the registry on
// loopback (removed, and collected, between samples). containerd is
// restarted with the CRI plugin's snapshotter set to each in turn. Then 50
// pods run twice on a thinctl pool sized 10% over what they need
// (criManyPods). It prints BENCH lines; it runs only when named with
// -test.run (minutes long); make bench runs it in its peer stage cri
// (tests/bench/run.sh).
func TestBenchCRIPodsOnThreeSnapshotters(t *testing.T) {
	if f := flag.Lookup("test.run"); f == nil || !strings.Contains(f.Value.String(), "BenchCRI") {
		t.Skip("a measurement: run it by name (--run TestBenchCRIPodsOnThreeSnapshotters)")
	}
	for _, tool := range []string{"dmsetup", "losetup", "blkdiscard"} {
		testenv.RequireTool(t, tool)
	}
	n := newCRINode(t)
	// newCRINode's calls end after 10 minutes; the measurement takes longer.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Minute)
	t.Cleanup(cancel)
	n.ctx = ctx
	poolName, _ := devmapperPool(t, 4<<30, 64<<20)
	dmRoot := filepath.Join(t.TempDir(), "devmapper")
	configFor := func(sn string) string {
		return strings.Replace(criConfig(n.registry, n.pauseRef), `snapshotter = "thinctl"`, fmt.Sprintf("snapshotter = %q", sn), 1) +
			devmapperConfig(dmRoot, poolName)
	}
	pullBlobs, _ := ociImage(t, manyLayerImage(criBenchPullLayers, criBenchPullLayerKB<<10), map[string]any{"Cmd": []string{"/none"}})
	pullRef := (&registry{host: n.registry}).push(t, "thinctl/pull", "1", pullBlobs)

	podMs, ctrMs, pullMs := map[string][]float64{}, map[string][]float64{}, map[string][]float64{}
	calls := map[string][]float64{} // "sn/call" -> ms
	srv := map[string][]float64{}   // thinctl-snapshotter's own time per request (its --debug log)
	pullSrv := map[string][]float64{}
	for round := range criBenchRounds {
		order := slices.Clone(criSnapshotters)
		for range round {
			order = append(order[1:], order[0])
		}
		for _, sn := range order {
			n.restartContainerdWith(t, configFor(sn))
			snaps := n.snapshotCount(t, sn)
			for i := range criBenchPulls {
				logAt := n.r.snapLogSize()
				t0 := time.Now()
				if _, err := n.img.PullImage(n.ctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: pullRef}}); err != nil {
					t.Fatalf("%s: PullImage %s: %v", sn, pullRef, err)
				}
				pullMs[sn] = append(pullMs[sn], msOf(time.Since(t0)))
				if sn == "thinctl" {
					own := map[string][]float64{}
					n.r.serverTimes(logAt, own, pullMethods...)
					var sum float64
					for _, m := range pullMethods {
						pullSrv[m] = append(pullSrv[m], own[m]...)
						if !strings.Contains(m, ".") {
							for _, ms := range own[m] {
								sum += ms
							}
						}
					}
					pullSrv["all"] = append(pullSrv["all"], sum)
				}
				if got := n.snapshotCount(t, sn) - snaps; got != criBenchPullLayers {
					t.Fatalf("%s: %d new snapshots after pull %d; want %d", sn, got, i, criBenchPullLayers)
				}
				n.removeImageAndCollect(t, pullRef, sn, snaps)
			}
			// The pods' images, unmeasured (a node has them already).
			for _, ref := range []string{n.pauseRef, n.appRef} {
				if _, err := n.img.PullImage(n.ctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: ref}}); err != nil {
					t.Fatalf("%s: PullImage %s: %v", sn, ref, err)
				}
			}
			logAt := n.r.snapLogSize()
			for i := range criBenchPods + 1 { // the first is a warm-up after containerd's start
				s := n.timedPod(t, fmt.Sprintf("%s-%d-%d", sn, round, i), criIdle)
				if i == 0 {
					continue
				}
				podMs[sn] = append(podMs[sn], s.total)
				ctrMs[sn] = append(ctrMs[sn], s.create+s.start)
				for call, ms := range map[string]float64{"RunPodSandbox": s.run, "CreateContainer": s.create, "StartContainer": s.start, "stop+remove": s.remove} {
					calls[sn+"/"+call] = append(calls[sn+"/"+call], ms)
				}
			}
			if sn == "thinctl" {
				n.r.serverTimes(logAt, srv, "Prepare", "Prepare.create", "Prepare.activate", "Mounts", "View", "Remove")
			}
			t.Logf("%-9s round %d: pod start %v ms, create+start %v ms, pull %v ms", sn, round, podMs[sn], ctrMs[sn], pullMs[sn])
		}
	}
	for _, sn := range criSnapshotters {
		t.Logf("%-9s pod start %7.1f ms, create+start %7.1f ms, pull %7.1f ms (medians of %d, %d, %d); per call: RunPodSandbox %.1f, CreateContainer %.1f, StartContainer %.1f, stop+remove %.1f ms",
			sn, medianF(podMs[sn]), medianF(ctrMs[sn]), medianF(pullMs[sn]), len(podMs[sn]), len(ctrMs[sn]), len(pullMs[sn]),
			medianF(calls[sn+"/RunPodSandbox"]), medianF(calls[sn+"/CreateContainer"]), medianF(calls[sn+"/StartContainer"]), medianF(calls[sn+"/stop+remove"]))
	}
	for _, m := range []string{"Prepare", "Prepare.create", "Prepare.activate", "Mounts", "View", "Remove"} {
		t.Logf("thinctl-snapshotter's own time in %s during the pod starts: median %.1f ms over %d requests", m, medianF(srv[m]), len(srv[m]))
	}
	for _, m := range append(pullMethods, "all") {
		t.Logf("thinctl-snapshotter's own time in %s during the pulls: median %.1f ms, %d requests, %.0f ms in all", m, medianF(pullSrv[m]), len(pullSrv[m]), sumF(pullSrv[m]))
	}
	med := func(m map[string][]float64, sn string) float64 { return medianF(m[sn]) }
	figs := []benchFig{
		{"cri_start_vs_ctrd_devmapper", med(podMs, "devmapper") / med(podMs, "thinctl")},
		{"cri_start_vs_overlayfs", med(podMs, "thinctl") / med(podMs, "overlayfs")},
		{"pull_vs_ctrd_devmapper", med(pullMs, "devmapper") / med(pullMs, "thinctl")},
		{"pull_vs_overlayfs", med(pullMs, "thinctl") / med(pullMs, "overlayfs")},
	}
	for _, sn := range criSnapshotters {
		figs = append(figs, benchFig{"cri_pod_start_ms_" + sn, med(podMs, sn)}, benchFig{"cri_create_start_ms_" + sn, med(ctrMs, sn)},
			benchFig{"cri_pull_ms_" + sn, med(pullMs, sn)})
	}

	// Printed now: the many-pods run takes longer than all of the above.
	for _, f := range figs {
		f.print()
	}
	criManyPods(t, n)
}

// benchFig is one BENCH line's figure.
type benchFig struct {
	name string
	v    float64
}

func (f benchFig) print() { fmt.Printf("BENCH %s=%.2f\n", f.name, f.v) }

// pullMethods are the snapshotter's requests during an unpack, and the
// steps of Prepare, whose time the benchmark adds up.
var pullMethods = []string{"Prepare", "Prepare.create", "Prepare.activate", "Mounts", "Commit", "Stat", "Usage"}

func sumF(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s
}

// criIdle is the bench pods' container: it waits for its TERM.
const criIdle = `trap 'exit 0' TERM
echo ready
while :; do sleep 1; done`

// podTimes is one pod's start, in milliseconds: the three CRI calls, until
// ContainerStatus says running (total), and its stop and removal.
type podTimes struct{ run, create, start, total, remove float64 }

// timedPod starts a pod running script in a container of the test image,
// the kubelet's calls in its order, and times them; then it stops and
// removes the pod.
func (n *criNode) timedPod(t *testing.T, name, script string) podTimes {
	t.Helper()
	var s podTimes
	pod := n.newPod(name)
	t0 := time.Now()
	podID := n.runPod(t, pod)
	t1 := time.Now()
	ctrID := n.createContainer(t, podID, pod, "c", script)
	t2 := time.Now()
	n.startRunning(t, ctrID)
	t3 := time.Now()
	s.run, s.create, s.start, s.total = msOf(t1.Sub(t0)), msOf(t2.Sub(t1)), msOf(t3.Sub(t2)), msOf(t3.Sub(t0))
	n.stopAndRemovePod(t, podID)
	s.remove = msOf(time.Since(t3))
	return s
}

// startRunning makes the StartContainer call and waits until
// ContainerStatus reports the container running.
func (n *criNode) startRunning(t *testing.T, ctrID string) {
	t.Helper()
	if _, err := n.rt.StartContainer(n.ctx, &runtime.StartContainerRequest{ContainerId: ctrID}); err != nil {
		t.Fatalf("StartContainer: %v", err)
	}
	for t0 := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		st, err := n.rt.ContainerStatus(n.ctx, &runtime.ContainerStatusRequest{ContainerId: ctrID})
		if err == nil && st.Status.State == runtime.ContainerState_CONTAINER_RUNNING {
			return
		}
		if time.Since(t0) > 60*time.Second {
			t.Fatalf("container %s not running 60 s after its start: %v (%v)", ctrID, st, err)
		}
	}
}

// restartContainerdWith stops containerd (SIGTERM) and starts it again
// with the configuration cfg.
func (n *criNode) restartContainerdWith(t *testing.T, cfg string) {
	t.Helper()
	n.r.containerd.Process.Signal(syscall.SIGTERM)
	n.r.containerd.Wait()
	n.config = cfg
	n.startContainerd(t)
}

// snapshotCount counts the snapshots containerd lists for snapshotter sn
// in CRI's namespace.
func (n *criNode) snapshotCount(t *testing.T, sn string) int {
	t.Helper()
	out, err := n.ctrK8s("snapshots", "--snapshotter", sn, "ls")
	if err != nil {
		t.Fatalf("ctr snapshots ls (%s): %v: %s", sn, err, out)
	}
	return strings.Count(strings.TrimSpace(out), "\n") // less the heading
}

// removeImageAndCollect removes an image through CRI, has containerd
// collect its garbage and waits until snapshotter sn holds want snapshots.
func (n *criNode) removeImageAndCollect(t *testing.T, ref, sn string, want int) {
	t.Helper()
	if _, err := n.img.RemoveImage(n.ctx, &runtime.RemoveImageRequest{Image: &runtime.ImageSpec{Image: ref}}); err != nil {
		t.Fatalf("RemoveImage %s: %v", ref, err)
	}
	n.collect(t)
	for t0 := time.Now(); n.snapshotCount(t, sn) != want; time.Sleep(100 * time.Millisecond) {
		if time.Since(t0) > 60*time.Second {
			t.Fatalf("%s: %d snapshots 60 s after RemoveImage; want %d", sn, n.snapshotCount(t, sn), want)
		}
	}
}

// collect runs containerd's garbage collection now (a lease deleted with
// sync): the rig's containerd collects only when asked.
func (n *criNode) collect(t *testing.T) {
	t.Helper()
	lc := leasesapi.NewLeasesClient(n.conn)
	ctx := namespaces.WithNamespace(n.ctx, "k8s.io")
	id := fmt.Sprintf("collect-%d", time.Now().UnixNano())
	if _, err := lc.Create(ctx, &leasesapi.CreateRequest{ID: id}); err != nil {
		t.Fatalf("create lease %s: %v", id, err)
	}
	if _, err := lc.Delete(ctx, &leasesapi.DeleteRequest{ID: id, Sync: true}); err != nil {
		t.Fatalf("delete lease %s with sync: %v", id, err)
	}
}

// poolUsage reads the data space the thin pool called name uses and has,
// in bytes, from its status line (dmsetup status: "... thin-pool <txid>
// <used>/<total meta> <used>/<total data> ..."), given its block size.
func poolUsage(t *testing.T, name string, block uint64) (used, total uint64) {
	t.Helper()
	out, err := exec.Command("dmsetup", "status", name).CombinedOutput()
	if err != nil {
		t.Fatalf("dmsetup status %s: %v: %s", name, err, out)
	}
	f := strings.Fields(string(out))
	if len(f) < 6 || f[2] != "thin-pool" {
		t.Fatalf("dmsetup status %s: %q is not a thin pool's status", name, out)
	}
	u, tot, _ := strings.Cut(f[5], "/")
	a, err1 := strconv.ParseUint(u, 10, 64)
	b, err2 := strconv.ParseUint(tot, 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("dmsetup status %s: data field %q", name, f[5])
	}
	return a * block, b * block
}

// poolName is the dm name of the rig's thin pool.
func (r *rig) poolName() string {
	return strings.TrimPrefix(r.devPrefix, "/dev/mapper/") + "pool"
}

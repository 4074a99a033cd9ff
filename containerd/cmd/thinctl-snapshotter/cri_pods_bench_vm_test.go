//go:build vm

package main

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/thinctl/thinctl/thinpool"
)

// The many-pods run: pods per round, rounds, the pool's headroom over what
// the pods need, and how far the pool's used space may end above where it
// started (the root device's journal may take a block or two).
const (
	criManyPodsN      = 50
	criManyRounds     = 2
	criManyHeadroom   = 0.10
	criManyToleranceB = 1 << 20
)

// criWriter is the many-pods run's container: it copies the image's 1 MiB
// /data/big into its own root filesystem (so that each pod takes space of
// its own) and waits for its TERM.
const criWriter = `trap 'exit 0' TERM
cat /data/big > /copy
echo ready
while :; do sleep 1; done`

// criManyPods runs criManyPodsN pods of the test image through CRI,
// criManyRounds times, on a thinctl pool sized criManyHeadroom over what
// they need, and prints its figures as BENCH lines, each round's when the
// round is done. What they need is measured first, on
// the benchmark's 4 GiB pool: the pool's used data space with only the
// images (the root and base devices and the image layers: fixed) and what
// one running writer pod adds to it (per pod, after a sync). The new
// pool's data size is (fixed + N × per pod) × (1 + headroom), rounded up
// to its 64 KiB blocks; its minimum free space is set to 5%, under the
// headroom (the default 10% would refuse the last pods' snapshots by
// design). After each round (every pod stopped and removed, containerd's
// collection run) the registry holds only the images' devices, no device
// of the pool is mounted, the pool's used space is back where the round
// began within criManyToleranceB (removed devices' blocks given back), and
// with the snapshotter stopped thinpool's Check is clean and thin_dump
// lists the same devices.
func criManyPods(t *testing.T, n *criNode) {
	t.Helper()
	n.restartContainerdWith(t, criConfig(n.registry, n.pauseRef))
	const block = 64 << 10
	fixed := n.settledUsage(t, block)
	one := n.newPod("measure")
	podID := n.runPod(t, one)
	n.startRunning(t, n.createContainer(t, podID, one, "c", criWriter))
	n.waitLog(t, one, "c", "ready")
	time.Sleep(6 * time.Second) // ext4's journal commit interval is 5 s
	syscall.Sync()
	withPod, _ := poolUsage(t, n.r.poolName(), block)
	perPod := withPod - fixed
	n.stopAndRemovePod(t, podID)
	need := fixed + criManyPodsN*perPod
	size := (uint64(float64(need)*(1+criManyHeadroom)) + block - 1) / block * block
	t.Logf("pool sizing: %.1f MiB with the images, %.2f MiB per running pod: %d pods need %.1f MiB; pool of %.1f MiB (%.0f%% headroom)",
		mib(fixed), mib(perPod), criManyPodsN, mib(need), mib(size), 100*criManyHeadroom)

	// A new thinctl root on a pool of that size, a new containerd.
	n.r.containerd.Process.Signal(syscall.SIGTERM)
	n.r.containerd.Wait()
	n.r.stopSnapshotter()
	n.r = newRigWith(t, thinpool.Options{DataSize: size, MetadataSize: 64 * thinpool.MiB, BaseSize: 256 * thinpool.MiB, MinFreeSpace: 5})
	n.r.cri = true
	n.r.startSnapshotter()
	n.config = ""
	n.startContainerd(t)
	for _, ref := range []string{n.pauseRef, n.appRef} {
		if _, err := n.img.PullImage(n.ctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: ref}}); err != nil {
			t.Fatalf("PullImage %s: %v", ref, err)
		}
	}
	imageDevs := n.r.records()
	benchFig{"cri_pods50_pool_mib", mib(size)}.print()
	benchFig{"cri_pods50_per_pod_mib", mib(perPod)}.print()
	for round := range criManyRounds {
		before := n.settledUsage(t, block)
		t0 := time.Now()
		pods := make([]string, criManyPodsN)
		cfgs := make([]*runtime.PodSandboxConfig, criManyPodsN)
		for i := range pods {
			cfgs[i] = n.newPod(fmt.Sprintf("many-%d-%d", round, i))
			pods[i] = n.runPod(t, cfgs[i])
			ctrID, err := n.createContainerErr(pods[i], cfgs[i], "c", criWriter)
			if err != nil {
				used, total := poolUsage(t, n.r.poolName(), block)
				t.Fatalf("round %d: CreateContainer of pod %d: %v (pool: %.1f of %.1f MiB used)", round, i, err, mib(used), mib(total))
			}
			n.startRunning(t, ctrID)
		}
		started := time.Since(t0)
		for i := range pods {
			n.waitLog(t, cfgs[i], "c", "ready")
		}
		syscall.Sync()
		peak, total := poolUsage(t, n.r.poolName(), block)
		t1 := time.Now()
		for _, id := range pods {
			n.stopAndRemovePod(t, id)
		}
		n.collect(t)
		for t2 := time.Now(); n.r.records() != imageDevs; time.Sleep(200 * time.Millisecond) {
			if time.Since(t2) > 120*time.Second {
				t.Fatalf("round %d: %d device records 120 s after the pods' removal; want the images' %d", round, n.r.records(), imageDevs)
			}
		}
		removed := time.Since(t1)
		if b, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(b), n.r.devPrefix) {
			t.Fatalf("round %d: a device of the pool (%s...) is still mounted:\n%s", round, n.r.devPrefix, b)
		}
		var after uint64
		for t2 := time.Now(); ; time.Sleep(500 * time.Millisecond) {
			if after = n.settledUsage(t, block); after <= before+criManyToleranceB || time.Since(t2) > 60*time.Second {
				break
			}
		}
		t.Logf("round %d: %d pods started in %v (%.0f ms each), peak %.1f of %.1f MiB used (%.1f%% free), stopped and removed in %v; used %.2f MiB before, %.2f MiB after",
			round, criManyPodsN, started.Round(time.Millisecond), msOf(started)/criManyPodsN, mib(peak), mib(total), 100-100*float64(peak)/float64(total),
			removed.Round(time.Millisecond), mib(before), mib(after))
		if after > before+criManyToleranceB {
			t.Fatalf("round %d: the pool uses %.2f MiB after the pods' removal, %.2f MiB before: more than %d KiB not given back",
				round, mib(after), mib(before), criManyToleranceB>>10)
		}
		n.r.stopSnapshotter()
		checkPoolAgrees(t, n.r.root, imageDevs)
		n.restartSnapshotter(t)
		r := fmt.Sprintf("cri_pods50_r%d_", round+1)
		for _, f := range []benchFig{{r + "start_s", started.Seconds()}, {r + "remove_s", removed.Seconds()},
			{r + "peak_used_pct", 100 * float64(peak) / float64(total)}, {r + "used_before_mib", mib(before)}, {r + "used_after_mib", mib(after)}} {
			f.print()
		}
	}
}

// settledUsage syncs and reads the used data space of the rig's pool once
// it no longer changes (removed devices' blocks are given back in the
// background).
func (n *criNode) settledUsage(t *testing.T, block uint64) uint64 {
	t.Helper()
	syscall.Sync()
	last, _ := poolUsage(t, n.r.poolName(), block)
	for t0 := time.Now(); time.Since(t0) < 30*time.Second; {
		time.Sleep(500 * time.Millisecond)
		u, _ := poolUsage(t, n.r.poolName(), block)
		if u == last {
			return u
		}
		last = u
	}
	return last
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

package main

import "fmt"

// Pods through CRI: a test of the containerd module
// (TestBenchCRIPodsOnThreeSnapshotters in containerd/cmd/thinctl-snapshotter)
// that run.sh's peer stage cri runs in a guest boot of its own, without
// udev. It prints only BENCH lines (the medians in ms, the ratios, the
// many-pods figures); the report's section is written from them.

// criSnapshotters are the columns of the CRI section, by the names the
// stage's BENCH lines carry.
var criSnapshotters = []struct{ key, what string }{
	{"thinctl", "thinctl-snapshotter"},
	{"devmapper", "containerd's devmapper"},
	{"overlayfs", "overlayfs"},
}

func renderCRI(w writer, r *Results, fig map[string]float64) {
	w("\n## 10. Pods through CRI\n\n")
	if _, ok := r.PeerBench["cri_start_vs_ctrd_devmapper"]; !ok {
		w("Not measured in this run (the peer stage `cri` of tests/bench/run.sh runs it; see docs/containerd.md, \"Kubernetes node\").\n")
		return
	}
	w("One containerd (Debian's 1.6.20 with its CRI plugin, runc through the v2 shim) in a guest boot of its own without\n")
	w("udev, restarted with the CRI plugin's `snapshotter` set to each snapshotter in turn (the order rotates between two\n")
	w("rounds); a CRI client makes the kubelet's calls. thinctl-snapshotter and containerd's devmapper snapshotter each\n")
	w("have a 4 GiB thin pool on loop files (64 KiB blocks, 256 MiB ext4 snapshots, discards on), overlayfs the guest's\n")
	w("ext4 scratch disk. A pod start is RunPodSandbox, CreateContainer and StartContainer until ContainerStatus says\n")
	w("running, with the pause and test images already pulled (the first pod after containerd's start is not counted);\n")
	w("a pull is PullImage of a 10-layer image (512 KiB a layer) from Debian's docker-registry on loopback, the image\n")
	w("removed and containerd's collection run between pulls. Medians.\n\n")
	w("| | thinctl-snapshotter | containerd's devmapper | overlayfs | ratio | goal |\n| --- | --- | --- | --- | --- | --- |\n")
	row := func(what, prefix, ratio string) {
		w("| %s |", what)
		for _, sn := range criSnapshotters {
			w(" %s |", fmtMs(fig[prefix+sn.key]))
		}
		if ratio == "" {
			w(" | |\n")
			return
		}
		t := targetFor(ratio)
		w(" %s (`%s`) | %s |\n", t.Value(fig[ratio]), ratio, t.Goal())
	}
	row("pod start", "cri_pod_start_ms_", "cri_start_vs_ctrd_devmapper")
	row("pod start, against overlayfs", "cri_pod_start_ms_", "cri_start_vs_overlayfs")
	row("CreateContainer + StartContainer", "cri_create_start_ms_", "")
	row("pull of 10 layers", "cri_pull_ms_", "pull_vs_ctrd_devmapper")
	row("pull, against overlayfs", "cri_pull_ms_", "pull_vs_overlayfs")
	if _, ok := fig["cri_pods50_pool_mib"]; !ok {
		return
	}
	w("\nFifty pods, twice, on a thinctl pool of %s: what one running pod takes (%s, measured first: sandbox and\n",
		fmtMiB(fig["cri_pods50_pool_mib"]), fmtMiB(fig["cri_pods50_per_pod_mib"]))
	w("container snapshots, 1 MiB written into its root) times 50, plus the images, plus 10%%. The pods start one after\n")
	w("the other; then all are stopped and removed and containerd's collection runs. After each round the registry holds\n")
	w("only the images' devices, thinpool's Check is clean and thin_dump agrees, and the pool's used space is back where\n")
	w("it began (within 1 MiB).\n\n")
	w("| round | 50 pods started | stopped, removed, collected | peak data used | used before | used after |\n| --- | --- | --- | --- | --- | --- |\n")
	for i := 1; ; i++ {
		p := fmt.Sprintf("cri_pods50_r%d_", i)
		if _, ok := fig[p+"start_s"]; !ok {
			break
		}
		w("| %d | %.1f s | %.1f s | %.1f%% | %s | %s |\n", i, fig[p+"start_s"], fig[p+"remove_s"], fig[p+"peak_used_pct"],
			fmtMiB(fig[p+"used_before_mib"]), fmtMiB(fig[p+"used_after_mib"]))
	}
}

// fmtMiB formats a size in MiB with two decimals.
func fmtMiB(v float64) string { return fmt.Sprintf("%.2f MiB", v) }

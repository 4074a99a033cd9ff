package main

import (
	"fmt"
	"math"
)

// Target is the goal the issue sets for one BENCH figure.
type Target struct {
	Name    string
	Meaning string  // what the figure is
	AtLeast float64 // goal is value >= AtLeast (0: no lower goal)
	AtMost  float64 // goal is value <= AtMost (0: no upper goal)
	Unit    string  // "" for a ratio (×), else " ms", " MiB"
}

var targets = []Target{
	{Name: "create_vs_floor", Meaning: "thinctl time / bare-ioctl time, create_snap + activate", AtMost: 1.2},
	{Name: "remove_vs_floor", Meaning: "thinctl time / bare-ioctl time, deactivate + delete", AtMost: 1.2},
	{Name: "create_vs_dmsetup", Meaning: "dmsetup time / thinctl time, create_snap + activate", AtLeast: 5},
	{Name: "remove_vs_dmsetup", Meaning: "dmsetup time / thinctl time, deactivate + delete", AtLeast: 3},
	{Name: "remove_discard_vs_floor", Meaning: "thinctl time with discards on (the default), deactivate + remove until the pool no longer reports space being returned / bare-ioctl deactivate + delete", AtMost: 1.5},
	{Name: "create_vs_dmsetup_udev", Meaning: "with udev running: dmsetup time / thinctl time, create_snap + activate", AtLeast: 2.5},
	{Name: "remove_vs_dmsetup_udev", Meaning: "with udev running: dmsetup time / thinctl time, deactivate + delete", AtLeast: 2},
	{Name: "create_vs_lvm", Meaning: "`lvcreate -s -kn -ay` of a thin LV / one `thinctl create --activate` process", AtLeast: 8},
	{Name: "remove_vs_lvm", Meaning: "`lvremove -f` / one `thinctl remove` process", AtLeast: 8},
	{Name: "cli_create_vs_dmsetup", Meaning: "`dmsetup message` + `dmsetup create` processes / one `thinctl create --activate` process", AtLeast: 3},
	{Name: "cli_create_vs_process_floor", Meaning: "one `thinctl create --activate` process / one process of the bench's own doing the same kernel work with no registry (message, create, load, resume)", AtMost: 1.25},
	{Name: "cli_remove_vs_process_floor", Meaning: "one `thinctl remove` process / one process of the bench's own doing the same kernel work with no registry (remove, message delete)", AtMost: 1.25},
	{Name: "scale_10000_vs_100", Meaning: "thinctl per-device time with 10,000 devices / with 100", AtMost: 1.5},
	{Name: "open_10000_ms", Meaning: "thinpool.Open of a root holding 10,000 devices, in a fresh process", AtMost: 1000, Unit: " ms"},
	{Name: "concurrent_8_vs_1", Meaning: "create+activate throughput of 8 goroutines on one Pool / of 1"},
	{Name: "rss_10000_mib", Meaning: "peak RSS of a process that opens a root holding 10,000 devices and lists them", AtMost: 64, Unit: " MiB"},
	{Name: "prepare_vs_ctrd_devmapper", Meaning: "containerd's devmapper snapshotter / thinctl-snapshotter, Prepare+Mounts through containerd's gRPC API", AtLeast: 5},
	{Name: "remove_vs_ctrd_devmapper", Meaning: "containerd's devmapper snapshotter / thinctl-snapshotter, Remove through containerd's garbage collection", AtLeast: 3},
	{Name: "import_vs_ctrd_devmapper", Meaning: "containerd's devmapper snapshotter / thinctl-snapshotter, `ctr images import` of 20 layers", AtLeast: 2},
	{Name: "csi_create_vs_lvm", Meaning: "`lvcreate` of a thin LV + mkfs.ext4 + mount / thinctl-csi's CreateVolume + NodeStageVolume + NodePublishVolume through its gRPC", AtLeast: 5},
	{Name: "csi_snapshot_vs_lvm", Meaning: "`lvcreate -s` of a mounted thin LV / thinctl-csi's CreateSnapshot of a published volume through its gRPC", AtLeast: 5},
	{Name: "cri_start_vs_ctrd_devmapper", Meaning: "pod start through CRI (RunPodSandbox → CreateContainer → StartContainer until running), containerd's devmapper snapshotter / thinctl-snapshotter", AtLeast: 2},
	{Name: "cri_start_vs_overlayfs", Meaning: "pod start through CRI, thinctl-snapshotter / containerd's overlayfs snapshotter", AtMost: 1.3},
	{Name: "pull_vs_ctrd_devmapper", Meaning: "CRI PullImage of a 10-layer image from a registry on loopback, containerd's devmapper snapshotter / thinctl-snapshotter", AtLeast: 2},
	{Name: "pull_vs_overlayfs", Meaning: "CRI PullImage of a 10-layer image from a registry on loopback, thinctl-snapshotter / containerd's overlayfs snapshotter", AtMost: 1.5},
	{Name: "cri_pod_start_ms_thinctl", Meaning: "pod start through CRI on thinctl-snapshotter (median)", Unit: " ms"},
	{Name: "cri_pod_start_ms_devmapper", Meaning: "pod start through CRI on containerd's devmapper snapshotter (median)", Unit: " ms"},
	{Name: "cri_pod_start_ms_overlayfs", Meaning: "pod start through CRI on containerd's overlayfs snapshotter (median)", Unit: " ms"},
	{Name: "cri_create_start_ms_thinctl", Meaning: "CreateContainer + StartContainer on thinctl-snapshotter (median)", Unit: " ms"},
	{Name: "cri_create_start_ms_devmapper", Meaning: "CreateContainer + StartContainer on containerd's devmapper snapshotter (median)", Unit: " ms"},
	{Name: "cri_create_start_ms_overlayfs", Meaning: "CreateContainer + StartContainer on containerd's overlayfs snapshotter (median)", Unit: " ms"},
	{Name: "cri_pull_ms_thinctl", Meaning: "PullImage of the 10-layer image on thinctl-snapshotter (median)", Unit: " ms"},
	{Name: "cri_pull_ms_devmapper", Meaning: "PullImage of the 10-layer image on containerd's devmapper snapshotter (median)", Unit: " ms"},
	{Name: "cri_pull_ms_overlayfs", Meaning: "PullImage of the 10-layer image on containerd's overlayfs snapshotter (median)", Unit: " ms"},
	{Name: "cri_pods50_pool_mib", Meaning: "data size of the thinctl pool the 50 pods ran on: 10% over what they need", Unit: " MiB"},
	{Name: "cri_pods50_per_pod_mib", Meaning: "pool data space one running pod takes (sandbox and container snapshots, 1 MiB written)", Unit: " MiB"},
	{Name: "cri_pods50_r1_start_s", Meaning: "50 pods started through CRI, one after the other, round 1", Unit: " s"},
	{Name: "cri_pods50_r2_start_s", Meaning: "50 pods started through CRI, one after the other, round 2", Unit: " s"},
	{Name: "cri_pods50_r1_remove_s", Meaning: "50 pods stopped and removed, containerd's collection until only the images' devices are left, round 1", Unit: " s"},
	{Name: "cri_pods50_r2_remove_s", Meaning: "50 pods stopped and removed, containerd's collection until only the images' devices are left, round 2", Unit: " s"},
	{Name: "cri_pods50_r1_peak_used_pct", Meaning: "pool data space used with the 50 pods running, round 1", Unit: "%"},
	{Name: "cri_pods50_r2_peak_used_pct", Meaning: "pool data space used with the 50 pods running, round 2", Unit: "%"},
	{Name: "cri_pods50_r1_used_before_mib", Meaning: "pool data space used before round 1 (images only)", Unit: " MiB"},
	{Name: "cri_pods50_r1_used_after_mib", Meaning: "pool data space used after round 1's pods were removed (asserted within 1 MiB of before)", Unit: " MiB"},
	{Name: "cri_pods50_r2_used_before_mib", Meaning: "pool data space used before round 2 (images only)", Unit: " MiB"},
	{Name: "cri_pods50_r2_used_after_mib", Meaning: "pool data space used after round 2's pods were removed (asserted within 1 MiB of before)", Unit: " MiB"},
	{Name: "cow4k_overlay_vs_thin", Meaning: "overlay2 / thin latency of the first 4 KiB write into a big parent file"},
	{Name: "pagecache_thin_vs_overlay", Meaning: "thin / overlay2 page-cache growth, ten layers reading one file"},
}

func targetFor(name string) Target {
	for _, t := range targets {
		if t.Name == name {
			return t
		}
	}
	return Target{Name: name}
}

// unit is the suffix of the target's values ("×" for a ratio).
func (t Target) unit() string {
	if t.Unit == "" {
		return "×"
	}
	return t.Unit
}

// Value formats v in the target's unit ("1.43×", "812 ms", "0.94 MiB").
func (t Target) Value(v float64) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return "—"
	case t.Unit == "":
		return fmt.Sprintf("%.2f×", v)
	case math.Abs(v) < 10 && v != math.Trunc(v):
		return fmt.Sprintf("%.2f%s", v, t.Unit) // "0.94 MiB", not "1 MiB"
	}
	return fmt.Sprintf("%.0f%s", v, t.Unit)
}

// Goal describes the target ("≥ 5×", "≤ 1000 ms", or "none (reported)").
func (t Target) Goal() string {
	switch {
	case t.AtLeast > 0:
		return fmt.Sprintf("≥ %g%s", t.AtLeast, t.unit())
	case t.AtMost > 0:
		return fmt.Sprintf("≤ %g%s", t.AtMost, t.unit())
	}
	return "none (reported)"
}

// Verdict says whether v meets the target and, when it does not, by what
// factor it falls short.
func (t Target) Verdict(v float64) string {
	if math.IsNaN(v) {
		return "not measured"
	}
	switch {
	case t.AtLeast > 0 && v >= t.AtLeast, t.AtMost > 0 && v <= t.AtMost:
		return "met"
	case t.AtLeast > 0:
		return fmt.Sprintf("missed by %.2f× (%.0f%% of the goal)", t.AtLeast/v, 100*v/t.AtLeast)
	case t.AtMost > 0:
		return fmt.Sprintf("missed by %.2f×", v/t.AtMost)
	}
	return "—"
}

// SummaryLines is the target summary make bench ends with: one line per
// figure, its value, its goal and the verdict.
func SummaryLines(figs []Bench) []string {
	out := make([]string, 0, len(figs))
	for _, f := range figs {
		t := targetFor(f.Name)
		out = append(out, fmt.Sprintf("TARGET %-26s %10s   goal %-16s %s", f.Name, t.Value(f.Value), t.Goal(), t.Verdict(f.Value)))
	}
	return out
}

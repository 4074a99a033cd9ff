package main

import (
	"strings"
	"testing"
)

func TestTheCRISectionTabulatesTheStagesFigures(t *testing.T) {
	figs := map[string]float64{
		"cri_start_vs_ctrd_devmapper": 2.5, "cri_start_vs_overlayfs": 1.1, "pull_vs_ctrd_devmapper": 3, "pull_vs_overlayfs": 1.8,
		"cri_pod_start_ms_thinctl": 1000, "cri_pod_start_ms_devmapper": 2500, "cri_pod_start_ms_overlayfs": 900,
		"cri_create_start_ms_thinctl": 600, "cri_create_start_ms_devmapper": 1500, "cri_create_start_ms_overlayfs": 500,
		"cri_pull_ms_thinctl": 4000, "cri_pull_ms_devmapper": 12000, "cri_pull_ms_overlayfs": 2200,
		"cri_pods50_pool_mib": 120.5, "cri_pods50_per_pod_mib": 1.25,
		"cri_pods50_r1_start_s": 95.2, "cri_pods50_r1_remove_s": 40.1, "cri_pods50_r1_peak_used_pct": 88.4,
		"cri_pods50_r1_used_before_mib": 30.5, "cri_pods50_r1_used_after_mib": 30.56,
	}
	md := renderReport(&Results{PeerBench: figs}, "", "bench", map[string]bool{})
	for _, want := range []string{
		"## 10. Pods through CRI",
		"| pod start | 1.00 s | 2.50 s | 900 ms | 2.50× (`cri_start_vs_ctrd_devmapper`) | ≥ 2× |",
		"| pull, against overlayfs | 4.00 s | 12.00 s | 2.20 s | 1.80× (`pull_vs_overlayfs`) | ≤ 1.5× |",
		"| CreateContainer + StartContainer | 600 ms | 1.50 s | 500 ms | | |",
		"thinctl pool of 120.50 MiB: what one running pod takes (1.25 MiB",
		"| 1 | 95.2 s | 40.1 s | 88.4% | 30.50 MiB | 30.56 MiB |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("the report lacks %q", want)
		}
	}
	if md := renderReport(&Results{}, "", "bench", map[string]bool{}); !strings.Contains(md, "## 10. Pods through CRI\n\nNot measured in this run") {
		t.Error("a run without the stage does not say the section was not measured")
	}
}

func TestSmallSizesKeepTheirDecimals(t *testing.T) {
	for v, want := range map[float64]string{0.94: "0.94 MiB", 812: "812 MiB", 5: "5 MiB"} {
		if got := (Target{Unit: " MiB"}).Value(v); got != want {
			t.Errorf("Value(%v) = %q, want %q", v, got, want)
		}
	}
}

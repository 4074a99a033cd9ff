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
}

var targets = []Target{
	{"create_vs_dmsetup", "dmsetup time / thinctl time, create_snap + activate", 5, 0},
	{"remove_vs_dmsetup", "dmsetup time / thinctl time, deactivate + delete", 3, 0},
	{"create_vs_floor", "thinctl time / bare-ioctl time, create_snap + activate", 0, 1.3},
	{"remove_vs_floor", "thinctl time / bare-ioctl time, deactivate + delete", 0, 1.3},
	{"scale_10000_vs_100", "thinctl per-device time with 10,000 devices / with 100", 0, 1.5},
	{"cow4k_overlay_vs_thin", "overlay2 / thin latency of the first 4 KiB write into a big parent file", 0, 0},
	{"pagecache_thin_vs_overlay", "thin / overlay2 page-cache growth, ten layers reading one file", 0, 0},
}

func targetFor(name string) Target {
	for _, t := range targets {
		if t.Name == name {
			return t
		}
	}
	return Target{Name: name}
}

// Goal describes the target ("≥ 5×", "≤ 1.3×", or "none (trade-off)").
func (t Target) Goal() string {
	switch {
	case t.AtLeast > 0:
		return fmt.Sprintf("≥ %g×", t.AtLeast)
	case t.AtMost > 0:
		return fmt.Sprintf("≤ %g×", t.AtMost)
	}
	return "none (trade-off)"
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

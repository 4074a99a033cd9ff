package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

const svgHead = `set terminal svg size 760,420 dynamic noenhanced font "sans,12" background rgb "white"
set grid ytics lc rgb "#dddddd"
set border 3
set tics nomirror
set key top left
set offsets graph 0, graph 0, graph 0.2, 0
`

const histStyle = `set style data histograms
set style histogram cluster gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
`

// plot is one SVG: its data file contents and its gnuplot body (which
// reads the data from the file named by DATA).
type plot struct {
	name, data, body string
}

// plotsFor builds the plots the results allow.
func plotsFor(r *Results) []plot {
	var ps []plot
	if oc := r.OpCost; oc != nil {
		var d strings.Builder
		for _, p := range pathOrder {
			if pc := oc.Paths[p]; pc != nil {
				fmt.Fprintf(&d, "%q %g %g\n", p, pc.Create(), pc.Remove())
			}
		}
		ps = append(ps, plot{"opcost.svg", d.String(), histStyle + fmt.Sprintf(`set title "Per-device cost, %d devices (median of %d repetitions)"
set key top right
set ylabel "ms per device"
set yrange [0:*]
plot DATA using 2:xtic(1) title "create_snap + activate", '' using 3 title "deactivate + delete"
`, oc.Devices, doneReps(oc))})
	}
	if s := r.Scale; s != nil && len(s.Levels) > 0 {
		var d strings.Builder
		for _, l := range s.Levels {
			fmt.Fprintf(&d, "%d %g %g %g\n", l.Devices, Median(l.CreateMs), Median(l.RemoveMs), l.CycleMs())
		}
		ps = append(ps, plot{"scale.svg", d.String(), `set title "thinctl per-device cost against devices already in the pool"
set key bottom right
set logscale x
set xlabel "devices in the pool"
set ylabel "ms per device"
set yrange [0:*]
plot DATA using 1:2 with linespoints lw 2 title "create + activate", '' using 1:3 with linespoints lw 2 title "deactivate + remove", '' using 1:4 with linespoints lw 2 title "both"
`})
	}
	if c := r.CoW; c != nil {
		d := fmt.Sprintf("thin %g %g %g\noverlay2 %g %g %g\n",
			Median(c.Thin.LatencyMs), MedianInt(c.Thin.StoreBytes)/1024, MedianInt(c.Thin.DiskBytes)/1024,
			Median(c.Overlay.LatencyMs), MedianInt(c.Overlay.StoreBytes)/1024, MedianInt(c.Overlay.DiskBytes)/1024)
		ps = append(ps, plot{"cow.svg", d, histStyle + fmt.Sprintf(`set multiplot layout 1,2 title "First 4 KiB write into a %d MiB parent file"
set logscale y
set key off
set title "latency (open+write+fsync)"
set ylabel "ms (log)"
plot DATA using 2:xtic(1) lc rgb "#4477aa"
set key top left
set title "bytes written"
set ylabel "KiB (log)"
plot DATA using 3:xtic(1) title "layer data stored" lc rgb "#228833", '' using 4 title "to the disk" lc rgb "#ccbb44"
unset multiplot
`, c.FileMiB)})
	}
	if p := r.PageCache; p != nil && len(p.Thin) > 0 && len(p.Overlay) > 0 {
		var d strings.Builder
		for i := 0; i < len(p.Thin) && i < len(p.Overlay); i++ {
			fmt.Fprintf(&d, "%d %g %g\n", i+1, float64(p.Thin[i])/(1<<20), float64(p.Overlay[i])/(1<<20))
		}
		ps = append(ps, plot{"pagecache.svg", d.String(), fmt.Sprintf(`set title "Page-cache growth: layers on one parent each read the same %d MiB file"
set xlabel "layers that have read the file"
set ylabel "Cached growth, MiB"
set yrange [0:*]
set xtics 1
plot DATA using 1:2 with linespoints lw 2 title "thin snapshots", '' using 1:3 with linespoints lw 2 title "overlay2"
`, p.FileMiB)})
	}
	if l := r.Layer; l != nil {
		d := fmt.Sprintf("\"create + mount\" %g %g\n\"unmount + remove\" %g %g\n",
			Median(l.ThinCreateMountMs), Median(l.OverlayCreateMountMs), Median(l.ThinUnmountRemoveMs), Median(l.OverlayUnmountRemoves))
		ps = append(ps, plot{"layer.svg", d, histStyle + `set title "A writable layer on a parent"
set key top right
set ylabel "ms"
set yrange [0:*]
plot DATA using 2:xtic(1) title "thin", '' using 3 title "overlay2"
`})
	}
	return ps
}

// drawPlots renders every plot into dir with gnuplot and reports which
// files it wrote; without gnuplot it writes none and says so on stderr.
func drawPlots(r *Results, dir string) map[string]bool {
	done := map[string]bool{}
	gp, err := exec.LookPath("gnuplot")
	if err != nil {
		fmt.Fprintln(os.Stderr, "thinctl-bench report: gnuplot not found; no plots drawn")
		return done
	}
	tmp, err := os.MkdirTemp("", "thinctl-bench-plot-")
	if err != nil {
		return done
	}
	defer os.RemoveAll(tmp)
	for _, p := range plotsFor(r) {
		data := filepath.Join(tmp, strings.TrimSuffix(p.name, ".svg")+".dat")
		if err := os.WriteFile(data, []byte(p.data), 0o644); err != nil {
			continue
		}
		out, head := filepath.Join(dir, p.name), svgHead
		if os.Getenv("THINCTL_BENCH_PNG") == "1" { // previews for people without an SVG viewer
			out = strings.TrimSuffix(out, ".svg") + ".png"
			head = strings.Replace(svgHead, "svg size 760,420 dynamic", "pngcairo size 760,420", 1)
		}
		script := head + fmt.Sprintf("set output %q\nDATA = %q\n", out, data) + p.body
		sp := filepath.Join(tmp, p.name+".gp")
		if err := os.WriteFile(sp, []byte(script), 0o644); err != nil {
			continue
		}
		if msg, err := exec.Command(gp, sp).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "thinctl-bench report: gnuplot %s: %v: %s\n", p.name, err, msg)
			continue
		}
		done[p.name] = true
	}
	return done
}

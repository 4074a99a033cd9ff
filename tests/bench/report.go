package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pkg/errors"
)

// reportMain turns a run's output into the markdown report, its plots
// (gnuplot, SVG) and the raw results next to them.
func reportMain(args []string) error {
	fl := flag.NewFlagSet("report", flag.ContinueOnError)
	var ins multiFlag
	fl.Var(&ins, "in", "output (console log) of a run; repeat to merge runs that measured different sections")
	var peers multiFlag
	fl.Var(&peers, "peer", "output of a peer stage (its \"BENCH name=value\" lines join the figures); repeatable")
	out := fl.String("out", "docs/BENCHMARKS.md", "markdown report to write")
	plots := fl.String("plots", "docs/bench", "directory for the SVG plots, results.json and the CPU profile")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if len(ins) == 0 {
		return errors.New("report: give the run's output with -in FILE")
	}
	var r *Results
	var prof []byte
	for _, in := range ins {
		b, err := os.ReadFile(in)
		if err != nil {
			return errors.Wrap(err, "read the run's output")
		}
		ri, err := ReadResults(string(b))
		if err != nil {
			return errors.Wrap(err, in)
		}
		p, err := ReadProfile(string(b))
		if err != nil {
			return errors.Wrapf(err, "%s: profile block", in)
		}
		if prof == nil {
			prof = p
		}
		if r == nil {
			r = ri
		} else {
			mergeResults(r, ri)
		}
	}
	for _, in := range peers {
		b, err := os.ReadFile(in)
		if err != nil {
			return errors.Wrap(err, "read a peer stage's output")
		}
		figs, err := ParseBenchLines(string(b))
		if err != nil {
			return errors.Wrap(err, in)
		}
		if c, err := ReadCtrdBench(string(b)); err != nil {
			return errors.Wrap(err, in)
		} else if c != nil {
			r.Containerd = c
		}
		if c, err := ReadCSIBench(string(b)); err != nil {
			return errors.Wrap(err, in)
		} else if c != nil {
			r.CSI = c
		}
		if r.PeerBench == nil {
			r.PeerBench = map[string]float64{}
		}
		if st, err := os.Stat(in); err == nil && len(figs) > 0 {
			r.Notes = append(r.Notes, fmt.Sprintf("the figures %s come from the peer stage's output %s (written %s)",
				strings.Join(sortedKeys(figs), ", "), filepath.Base(in), st.ModTime().UTC().Format("2006-01-02 15:04 UTC")))
		}
		for k, v := range figs {
			r.PeerBench[k] = v
		}
	}
	if err := os.MkdirAll(*plots, 0o755); err != nil {
		return err
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(*plots, "results.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	var top string
	if len(prof) > 0 {
		pp := filepath.Join(*plots, "cpu.pprof")
		if err := os.WriteFile(pp, prof, 0o644); err != nil {
			return err
		}
		top = pprofTop(pp)
	}
	relPlots, err := filepath.Rel(filepath.Dir(*out), *plots)
	if err != nil {
		relPlots = *plots
	}
	plotted := drawPlots(r, *plots)
	md := renderReport(r, top, relPlots, plotted)
	if err := os.WriteFile(*out, []byte(md), 0o644); err != nil {
		return err
	}
	figs := BenchFigures(r)
	for _, x := range figs {
		fmt.Println(x.Line())
	}
	fmt.Printf("=== bench: targets (revision %s, run started %s) ===\n", r.Config.Revision, r.Env.Started)
	for _, l := range SummaryLines(figs) {
		fmt.Println(l)
	}
	return nil
}

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// mergeResults fills the sections r lacks from o, a run of the same
// revision that measured other sections, and records that it did.
func mergeResults(r, o *Results) {
	var took []string
	if r.OpCost == nil && o.OpCost != nil {
		r.OpCost, r.Config.Devices, r.Config.Reps, r.Config.ProfileN = o.OpCost, o.Config.Devices, o.Config.Reps, o.Config.ProfileN
		took = append(took, "1 (operation cost)")
	}
	if len(r.Breakdown) == 0 && len(o.Breakdown) > 0 {
		r.Breakdown = o.Breakdown
		took = append(took, "1 (breakdown and profile)")
	}
	if r.Scale == nil && o.Scale != nil {
		r.Scale = o.Scale
		c := o.Config
		r.Config.ScaleLevels, r.Config.ScaleOps, r.Config.ScaleReps, r.Config.Populate = c.ScaleLevels, c.ScaleOps, c.ScaleReps, c.Populate
		took = append(took, "2 (scale)")
	}
	if r.CoW == nil && o.CoW != nil {
		r.CoW, r.Config.CoWFileMiB, r.Config.CoWReps = o.CoW, o.Config.CoWFileMiB, o.Config.CoWReps
		took = append(took, "3 (copy-on-write)")
	}
	if r.PageCache == nil && o.PageCache != nil {
		r.PageCache, r.Config.PCFileMiB, r.Config.PCLayers = o.PageCache, o.Config.PCFileMiB, o.Config.PCLayers
		took = append(took, "4 (page cache)")
	}
	if r.Layer == nil && o.Layer != nil {
		r.Layer, r.Config.LayerReps = o.Layer, o.Config.LayerReps
		took = append(took, "5 (layer setup)")
	}
	if r.Peers == nil && o.Peers != nil {
		r.Peers, r.Config.PeersN, r.Config.PeersReps, r.SmallProbes = o.Peers, o.Config.PeersN, o.Config.PeersReps, o.SmallProbes
		took = append(took, "6 (peers)")
	}
	if r.Concurrency == nil && o.Concurrency != nil {
		r.Concurrency, r.Config.ConcTotal = o.Concurrency, o.Config.ConcTotal
		took = append(took, "7 (concurrency)")
	}
	if r.UdevOpCost == nil && o.UdevOpCost != nil {
		// make bench's second boot: its own guest, with udev.
		r.UdevOpCost = o.UdevOpCost
		r.UdevEnv = &o.Env
	}
	if r.Elapsed == nil {
		r.Elapsed = map[string]Secs{}
	}
	for k, v := range o.Elapsed {
		r.Elapsed[k] += v
	}
	r.Notes = append(r.Notes, o.Notes...)
	if len(took) > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("sections %s come from a second run (revision %s, same kind of machine, started %s, run alongside the first); "+
			"every ratio still compares paths measured within one run", strings.Join(took, ", "), o.Config.Revision, o.Env.Started))
	}
}

// pprofTop runs `go tool pprof -top -cum` on a profile; "" when that fails.
func pprofTop(path string) string {
	out, err := exec.Command("go", "tool", "pprof", "-top", "-cum", "-nodecount=30", path).Output()
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var keep []string
	for _, l := range lines {
		if strings.HasPrefix(l, "File:") || strings.HasPrefix(l, "Build ID:") || strings.HasPrefix(l, "Time:") {
			continue
		}
		keep = append(keep, l)
	}
	return strings.Join(keep, "\n")
}

// ---------------------------------------------------------------------------
// formatting

func fmtMs(x float64) string {
	switch {
	case math.IsNaN(x):
		return "—"
	case x >= 1000:
		return fmt.Sprintf("%.2f s", x/1000)
	case x >= 10:
		return fmt.Sprintf("%.0f ms", x)
	case x >= 1:
		return fmt.Sprintf("%.1f ms", x)
	}
	return fmt.Sprintf("%.3f ms", x)
}

func fmtBytes(x float64) string {
	switch {
	case math.IsNaN(x):
		return "—"
	case math.Abs(x) >= 1<<30:
		return fmt.Sprintf("%.2f GiB", x/(1<<30))
	case math.Abs(x) >= 1<<20:
		return fmt.Sprintf("%.1f MiB", x/(1<<20))
	case math.Abs(x) >= 1<<10:
		return fmt.Sprintf("%.0f KiB", x/(1<<10))
	}
	return fmt.Sprintf("%.0f B", x)
}

func reps(n int) string {
	if n == 1 {
		return "1 repetition"
	}
	return fmt.Sprintf("%d repetitions", n)
}

func fmtCount(x float64) string {
	if math.IsNaN(x) {
		return "—"
	}
	return fmt.Sprintf("%.1f", x)
}

func fmtX(x float64) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "—"
	}
	return FormatRatio(x) + "×"
}

// spread prints min–max of xs.
func spread(xs []float64, f func(float64) string) string {
	if len(xs) == 0 {
		return "—"
	}
	lo, hi := xs[0], xs[0]
	for _, x := range xs {
		lo, hi = math.Min(lo, x), math.Max(hi, x)
	}
	return f(lo) + " – " + f(hi)
}

// ---------------------------------------------------------------------------
// report

var pathOrder = []string{PathLibrary, PathDmsetup, PathFloor, PathLibraryDiscard}

var pathText = map[string]string{
	PathLibrary:        "thinctl library (`Pool.Create`+`Activate`, `Deactivate`+`Remove`), registry durable, discards off",
	PathDmsetup:        "dmsetup processes, containerd devmapper style",
	PathFloor:          "bare ioctls, no registry (the floor)",
	PathLibraryDiscard: "thinctl library with discards on (the default)",
	PathCLI:            "`thinctl create ID --parent origin --activate`; `thinctl remove ID` (one process each)",
	PathDmsetupCLI:     "`dmsetup message <pool> 0 \"create_snap N O\"` + `dmsetup create`; `dmsetup remove` + `dmsetup message ... delete`",
	PathLVM:            "`lvcreate -s -kn -ay -n snapN vg/origin`; `lvremove -f vg/snapN` (lvm2)",
	PathProcFloor:      "`thinctl-procfloor create ...`; `thinctl-procfloor remove ...` (the process floor: the same ioctls as one thinctl process, no registry)",
}

// pathTable writes the per-path create and remove costs of oc, in order.
func pathTable(w writer, oc *OpCost, order []string) {
	w("| path | create + activate | range | deactivate + delete | range |\n| --- | --- | --- | --- | --- |\n")
	for _, p := range order {
		pc := oc.Paths[p]
		if pc == nil {
			continue
		}
		w("| %s | %s | %s | %s | %s |\n", pathText[p], fmtMs(pc.Create()), spread(pc.CreateMs, fmtMs), fmtMs(pc.Remove()), spread(pc.RemoveMs, fmtMs))
	}
}

func renderReport(r *Results, top, plots string, plotted map[string]bool) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	figs := BenchFigures(r)
	fig := map[string]float64{}
	for _, f := range figs {
		fig[f.Name] = f.Value
	}
	img := func(name, alt string) {
		if plotted[name] {
			w("\n![%s](%s/%s)\n", alt, plots, name)
		}
	}

	w("# Benchmarks\n\n")
	w("thinctl against `dmsetup` (how containerd's devmapper snapshotter drives device-mapper), against the bare\n")
	w("ioctl sequence with no bookkeeping (the floor), against lvm2's thin snapshots and against overlay2, without\n")
	w("and with udev. Every ratio compares paths measured in the same run; compare the ratios, not the absolute\n")
	w("times (see [Environment](#environment)). Medians of the repetitions.\n\n")
	w("This file is generated: `make bench` (in the throwaway VM, full counts) or `make bench-native` (on a\n")
	w("device-mapper host) runs `tests/bench/run.sh`, which runs `thinctl-bench run` in a guest without udev\n")
	w("(every measurement) and in a second guest with udev (measurement 1 again), then `thinctl-bench report` to\n")
	w("write this page, the plots and the raw results in `docs/bench/`; its last lines are the figures below and a\n")
	w("TARGET line for each (value, goal, verdict). `tests/bench/run.sh --quick` is a small-count check that writes\n")
	w("to `$TMPDIR` instead.\n\n")

	w("## Summary\n\n")
	w("| figure | value | what it is | goal | verdict |\n| --- | --- | --- | --- | --- |\n")
	for _, f := range figs {
		t := targetFor(f.Name)
		w("| `%s` | %s | %s | %s | %s |\n", f.Name, t.Value(f.Value), t.Meaning, t.Goal(), t.Verdict(f.Value))
	}
	w("\nThe same figures as the program's last lines:\n\n```\n")
	for _, f := range figs {
		w("%s\n", f.Line())
	}
	w("```\n")
	if r.Config.Quick {
		w("\n> **Quick run**: small counts (%d devices, scale levels %v); the scale figure compares the largest level measured with the smallest.\n", r.Config.Devices, r.Config.ScaleLevels)
	}
	for _, n := range r.Notes {
		w("\n> Note: %s\n", strings.Join(strings.Fields(n), " "))
	}

	w("\n## Environment\n\n")
	e := r.Env
	w("| | |\n| --- | --- |\n")
	w("| kernel | %s |\n| emulated | %s |\n| CPUs | %d (%s) |\n| memory | %d MiB |\n", e.Kernel, e.Emulation, e.CPUs, e.CPUModel, e.MemTotalMB)
	w("| device-mapper ioctl interface | %s |\n| dmsetup | %s |\n| udev running | %v |\n", e.DMVersion, e.Dmsetup, e.Udev)
	w("| scratch filesystem (pools' loop files, registry, overlay2 home) | %s |\n| Go | %s |\n| run started | %s |\n", e.ScratchFS, e.GoVersion, e.Started)
	if r.Config.Revision != "" {
		w("| thinctl revision | `%s` |\n", r.Config.Revision)
	}
	c := r.Config
	w("\nPools: loop files on the scratch filesystem, %d KiB blocks, %d MiB devices, ext4, `skip_block_zeroing`.\n", c.BlockKiB, c.DeviceMiB)
	w("Counts: %d devices × %s (operation cost); scale levels %v with %d devices × %s each;\n", c.Devices, reps(c.Reps), c.ScaleLevels, c.ScaleOps, reps(c.ScaleReps))
	w("%d MiB file × %s (copy-on-write); %d layers × %d MiB (page cache); %s of layer create+mount.\n", c.CoWFileMiB, reps(c.CoWReps), c.PCLayers, c.PCFileMiB, reps(c.LayerReps))
	if len(r.Elapsed) > 0 {
		var keys []string
		var total float64
		for k, v := range r.Elapsed {
			keys = append(keys, k)
			total += float64(v)
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s %.0f s", k, float64(r.Elapsed[k])))
		}
		w("Wall time of the measurements: %.1f min (%s).\n", total/60, strings.Join(parts, ", "))
	}
	if strings.Contains(e.Emulation, "TCG") {
		w("\nUnder TCG every instruction is emulated and every ioctl, fsync and fork pays for it: absolute times are many\n")
		w("times a native host's, and the build machines were shared with other jobs, so single numbers are noisy. The ratios\n")
		w("compare paths measured in the same run, interleaved (the order of the paths rotates between repetitions).\n")
	}

	renderOpCost(w, r, fig, img)
	renderBreakdown(w, r, top)
	renderScale(w, r, fig, img)
	renderCoW(w, r, fig, img)
	renderPageCache(w, r, fig, img)
	renderLayer(w, r, img)
	renderPeers(w, r, fig)
	renderConcurrency(w, r, fig)
	renderContainerd(w, r, fig)
	renderCSI(w, r, fig)
	renderCRI(w, r, fig)
	renderTradeoffs(w, r, fig)
	return b.String()
}

type writer func(format string, args ...any)

func renderOpCost(w writer, r *Results, fig map[string]float64, img func(string, string)) {
	oc := r.OpCost
	w("\n## 1. Operation cost: %d devices\n\n", r.Config.Devices)
	if oc == nil {
		w("Not measured in this run.\n")
		return
	}
	w("Each repetition snapshots one inactive origin %d times (create_snap + activate), then deactivates and deletes\n", oc.Devices)
	w("the %d devices; the paths take turns device by device (the order rotates), so a change in the machine's load\n", oc.Devices)
	w("hits them alike. The table gives the median over repetitions of the mean per device, and the range of those means.\n")
	w("All paths use the same pool. The dmsetup path is `dmsetup info` on the origin (to suspend it only if it is\n")
	w("active, as containerd does), `dmsetup message <pool> 0 \"create_snap N O\"`, `dmsetup create <name> --table ...`;\n")
	w("then `dmsetup remove`, `dmsetup message <pool> 0 \"delete N\"`. The floor is `Message`, `Create`, `LoadTable`,\n")
	w("`Resume` (with udev, skipping the dm rules' disk rules, as thinctl resumes a thin device); `Remove`, `Message`\n")
	w("with the dm package and nothing else.\n\n")
	pathTable(w, oc, pathOrder)
	if pc := oc.Paths[PathLibrary]; pc != nil && len(pc.CreateMetaFlushes) > 0 {
		w("\nFlush requests counted by the block layer per device (median over repetitions). A thin-pool metadata commit\n")
		w("flushes the pool's metadata device; the floor makes exactly one commit per create and per remove, so its count\n")
		w("is the price of one commit and the last columns divide by it. Scratch-disk flushes are the registry's fsyncs\n")
		w("plus the commits the loop device passes down as fsyncs of the metadata file.\n\n")
		w("| path | create: metadata flushes | create: commits | create: disk flushes | remove: metadata flushes | remove: commits | remove: disk flushes |\n| --- | --- | --- | --- | --- | --- | --- |\n")
		fc, fr := math.NaN(), math.NaN()
		if f := oc.Paths[PathFloor]; f != nil {
			fc, fr = Median(f.CreateMetaFlushes), Median(f.RemoveMetaFlushes)
		}
		for _, p := range pathOrder {
			if pc := oc.Paths[p]; pc != nil {
				mc, mr := Median(pc.CreateMetaFlushes), Median(pc.RemoveMetaFlushes)
				w("| %s | %.1f | %s | %.1f | %.1f | %s | %.1f |\n", p, mc, fmtCount(Ratio(mc, fc)), Median(pc.CreateDiskFlushes),
					mr, fmtCount(Ratio(mr, fr)), Median(pc.RemoveDiskFlushes))
			}
		}
	}
	if n := doneReps(oc); n < r.Config.Reps {
		w("\nThis run was stopped after %d of its %d repetitions; the medians are over those %d.\n", n, r.Config.Reps, n)
	}
	lib, dis := oc.Paths[PathLibrary], oc.Paths[PathLibraryDiscard]
	w("\nRatios: dmsetup/thinctl %s (create) and %s (remove); thinctl/floor %s (create) and %s (remove).\n",
		fmtX(fig["create_vs_dmsetup"]), fmtX(fig["remove_vs_dmsetup"]), fmtX(fig["create_vs_floor"]), fmtX(fig["remove_vs_floor"]))
	if lib != nil && dis != nil {
		w("With discards on (the default, so that a removed device gives its space back to the data file's filesystem),\n")
		w("deactivate + remove costs %s against %s without (%s)", fmtMs(dis.Remove()), fmtMs(lib.Remove()), fmtX(Ratio(dis.Remove(), lib.Remove())))
		if len(dis.RemoveSettledMs) > 0 {
			w("; until `pool status` no longer reports space being returned, %s", fmtMs(dis.Settled()))
		}
		w(".\n`remove_discard_vs_floor` = %s: that time against the floor's deactivate + delete (which returns nothing).\n",
			fmtX(fig["remove_discard_vs_floor"]))
	}
	img("opcost.svg", "operation cost per device")
	renderUdev(w, r, fig)
}

// doneReps is how many repetitions of a measurement finished (the library
// path's, else any path's).
func doneReps(oc *OpCost) int {
	if pc := oc.Paths[PathLibrary]; pc != nil {
		return len(pc.CreateMs)
	}
	for _, pc := range oc.Paths {
		return len(pc.CreateMs)
	}
	return 0
}

func breakdownMs(r *Results, name string) float64 {
	for _, c := range r.Breakdown {
		if c.Name == name {
			return c.Ms
		}
	}
	return math.NaN()
}

func renderBreakdown(w writer, r *Results, top string) {
	if len(r.Breakdown) == 0 {
		return
	}
	w("\n### Where thinctl's time goes\n\n")
	w("Each piece a library operation is built from, timed alone in the same pool (median of repeated calls):\n\n")
	w("| piece | median | what |\n| --- | --- | --- |\n")
	for _, c := range r.Breakdown {
		w("| `%s` | %s | %s |\n", c.Name, fmtMs(c.Ms), c.Note)
	}
	commit := breakdownMs(r, "msg_create_snap")
	flush, noflush := breakdownMs(r, "dm_status_ioctl"), breakdownMs(r, "dm_status_noflush")
	if oc := r.OpCost; oc != nil && commit > 0 {
		lib, floor := oc.Paths[PathLibrary], oc.Paths[PathFloor]
		if lib != nil && floor != nil {
			gc, gr := lib.Create()-floor.Create(), lib.Remove()-floor.Remove()
			w("\nthinctl spends %s more than the floor per create and %s more per remove. One pool metadata commit\n", fmtMs(gc), fmtMs(gr))
			w("(a `create_snap` message) costs %s here, so the gaps are worth about %.1f and %.1f commits.\n", fmtMs(commit), gc/commit, gr/commit)
		}
		if flush > 0 && noflush > 0 {
			w("A status ioctl of the pool without `DM_NOFLUSH_FLAG` costs %s against %s with it: the kernel's thin-pool\n", fmtMs(flush), fmtMs(noflush))
			w("status commits the metadata first unless the flag is set, so every status read would be a commit; thinpool\n")
			w("reads it with the flag.\n")
		}
		if dw := breakdownMs(r, "durable_write"); dw > 0 {
			w("A durable registry write (file fsync + directory fsync) costs %s; a durable remove %s.\n", fmtMs(dw), fmtMs(breakdownMs(r, "durable_remove")))
		}
		if fork := breakdownMs(r, "dmsetup_true"); fork > 0 {
			w("Starting one `dmsetup` process costs %s; the dmsetup path starts 3 per create and 2 per remove.\n", fmtMs(fork))
		}
	}
	renderClosing(w, r)
	if top != "" {
		w("\nCPU profile of %d library create+activate and deactivate+remove cycles (`go tool pprof -top -cum`, profile in\n", r.Config.ProfileN)
		w("`docs/bench/cpu.pprof`). CPU time only: the process mostly waits in the kernel for metadata commits and fsyncs,\n")
		w("which a CPU profile cannot see, so the breakdown above is the better guide to wall time.\n\n```\n%s\n```\n", top)
	}
}

// renderClosing sizes what separates the library from the floor, from the
// run's own counts: the scratch-disk flushes a library create or remove
// causes beyond the floor's are the registry's (its journal append), and
// the time beyond the floor's is the registry plus the library's own work.
func renderClosing(w writer, r *Results) {
	oc := r.OpCost
	if oc == nil || oc.Paths[PathLibrary] == nil || oc.Paths[PathFloor] == nil {
		return
	}
	lib, floor := oc.Paths[PathLibrary], oc.Paths[PathFloor]
	if len(lib.CreateDiskFlushes) == 0 || len(floor.CreateDiskFlushes) == 0 {
		return
	}
	xc := Median(lib.CreateDiskFlushes) - Median(floor.CreateDiskFlushes)
	xr := Median(lib.RemoveDiskFlushes) - Median(floor.RemoveDiskFlushes)
	w("\n### What separates the library from the floor\n\n")
	w("A library create makes the same single metadata commit as the floor (the `create_snap` message; the kernel\n")
	w("commits after every message) and reads the pool status only with `DM_NOFLUSH_FLAG`. What it adds is the\n")
	w("registry: per create it causes %.1f scratch-disk flushes more than the floor, per remove %.1f (the journal\n", xc, xr)
	w("append that makes the operation durable: docs/registry.md), and the library's own work around the same\n")
	w("ioctls (checking the records it reads, encoding them, the root lock). Together they cost %s per create and\n",
		fmtMs(lib.Create()-floor.Create()))
	w("%s per remove here (%s and %s the floor).", fmtMs(lib.Remove()-floor.Remove()), fmtX(Ratio(lib.Create(), floor.Create())), fmtX(Ratio(lib.Remove(), floor.Remove())))
	if fs := breakdownMs(r, "durable_write"); !math.IsNaN(fs) {
		w(" For scale: a file write with a file and a directory fsync costs %s in this run's breakdown.", fmtMs(fs))
	}
	w("\nThe flushes are what makes a crash at any step recoverable (docs/RELIABILITY.md).\n")
}

func renderScale(w writer, r *Results, fig map[string]float64, img func(string, string)) {
	s := r.Scale
	w("\n## 2. Scale\n\n")
	if s == nil || len(s.Levels) == 0 {
		w("Not measured in this run.\n")
		return
	}
	switch r.Config.Populate {
	case PopulateRestore:
		w("The pool was filled without the library, to keep the run within its time budget under emulation (%d library\n", s.OpenAt)
		w("`Create` calls cost a metadata commit and several fsyncs each): at each level the pool was taken down\n")
		w("(`Pool.Down`), empty thin devices were added to its metadata with `thin_dump` and `thin_restore`, their registry\n")
		w("records written in the documented format (docs/registry.md), and the root opened again with `thinpool.Open`\n")
		w("(the Open column: loop devices, pool table, reading every record). Each added device is one more entry in the\n")
		w("pool's device tree and one more file in the registry, as a snapshot would be. The measured operations at each\n")
		w("level go through the library, as in measurement 1.\n\n")
	case PopulateRaw:
		w("The pool was filled with inactive snapshots of the origin by sending `create_snap` messages with the dm package\n")
		w("and writing their registry records in the documented format (docs/registry.md) without fsync, then `sync` and\n")
		w("`thinpool.Open` so that the library indexes them: %d library `Create` calls (each a metadata commit and several\n", s.OpenAt)
		w("fsyncs) would not fit the run's time budget under emulation. The measured operations at each level go through\n")
		w("the library, as in measurement 1.\n\n")
	default:
		w("The pool was filled with inactive snapshots of the origin through the library's `Pool.Create`.\n\n")
	}
	w("| devices in the pool | create + activate | deactivate + remove | both | ReadDir of devices/ | thinpool.Open |\n| --- | --- | --- | --- | --- | --- |\n")
	for _, l := range s.Levels {
		open := "—"
		if l.OpenMs > 0 {
			open = fmtMs(l.OpenMs)
		}
		w("| %d | %s | %s | %s | %s | %s |\n", l.Devices, fmtMs(Median(l.CreateMs)), fmtMs(Median(l.RemoveMs)), fmtMs(l.CycleMs()), fmtMs(l.ReadDirMs), open)
	}
	lo, hi := s.Levels[0], s.Levels[len(s.Levels)-1]
	w("\nPer-device cost at %d devices / at %d: %s (goal ≤ 1.5×). ", hi.Devices, lo.Devices, fmtX(fig["scale_10000_vs_100"]))
	w("Opening a root that holds %d devices (`thinpool.Open`, pool already up): %s (median of %d),\n", s.OpenAt, fmtMs(Median(s.OpenMs)), len(s.OpenMs))
	w("%s per device in the root, against %s to list the registry directory alone. Open reads and checks every device\n", fmtMs(Median(s.OpenMs)/float64(s.OpenAt)), fmtMs(hi.ReadDirMs))
	w("record once to build its index (the sweep for deferred deletions uses the index). The operations themselves\n")
	w("stay flat.\n")
	if len(s.Probes) > 0 {
		var open, list, proc, rss []float64
		for _, p := range s.Probes {
			open, list, proc = append(open, p.OpenMs), append(list, p.ListMs), append(proc, p.ProcessMs)
			rss = append(rss, float64(p.MaxRSSKiB)*1024)
		}
		w("\nIn a fresh process (`thinctl-bench probe`, a child of the harness, %d times): `thinpool.Open` of the root with\n", len(s.Probes))
		w("%d devices took %s (`open_10000_ms`, range %s), listing them (`Pool.Devices`) %s, the whole process %s;\n",
			s.Probes[0].Devices, fmtMs(Median(open)), spread(open, fmtMs), fmtMs(Median(list)), fmtMs(Median(proc)))
		w("its peak RSS (the child's `getrusage` maxrss, so the harness's own memory does not count) was %s (`rss_10000_mib`).\n",
			fmtBytes(Median(rss)))
		renderOpenProfile(w, s.Probes)
	}
	if len(s.Populate) > 0 && r.Config.Populate != PopulateRestore {
		var xs []float64
		for _, f := range s.Populate {
			xs = append(xs, f.Ms)
		}
		w("Filling cost %s per device (%s method).\n", spread(xs, fmtMs), r.Config.Populate)
	}
	img("scale.svg", "per-device cost against pool size")
}

func renderCoW(w writer, r *Results, fig map[string]float64, img func(string, string)) {
	c := r.CoW
	w("\n## 3. Copy-on-write granularity\n\n")
	if c == nil {
		w("Not measured in this run.\n")
		return
	}
	w("A parent layer holds one %d MiB file. A fresh child layer is mounted, the page cache dropped, and the child\n", c.FileMiB)
	w("writes 4 KiB into the middle of the file: `open(O_WRONLY)`, `pwrite`, `fsync`, `close`. overlay2 copies the whole\n")
	w("file up into the child's upper directory (at `open`); a thin snapshot copies the pool block(s) the write lands in\n")
	w("(%d KiB each) plus whatever the filesystem's journal commit touches. Bytes are measured after `sync`.\n\n", c.Thin.PoolBlockKiB)
	w("| | thin snapshot | overlay2 |\n| --- | --- | --- |\n")
	w("| first-write latency (open+write+fsync) | %s | %s |\n", fmtMs(Median(c.Thin.LatencyMs)), fmtMs(Median(c.Overlay.LatencyMs)))
	w("| of which open+write (before fsync) | %s | %s |\n", fmtMs(Median(c.Thin.OpenWriteMs)), fmtMs(Median(c.Overlay.OpenWriteMs)))
	w("| layer data stored (thin: pool data used; overlay2: upper dir allocation) | %s | %s |\n", fmtBytes(MedianInt(c.Thin.StoreBytes)), fmtBytes(MedianInt(c.Overlay.StoreBytes)))
	w("| backing file growth (thin: pool data file; overlay2: upper dir) | %s | %s |\n", fmtBytes(MedianInt(c.Thin.FileBytes)), fmtBytes(MedianInt(c.Overlay.FileBytes)))
	w("| written to the scratch disk (block-layer stats) | %s | %s |\n", fmtBytes(MedianInt(c.Thin.DiskBytes)), fmtBytes(MedianInt(c.Overlay.DiskBytes)))
	w("\noverlay2/thin first-write latency: %s.\n", fmtX(fig["cow4k_overlay_vs_thin"]))
	img("cow.svg", "first 4 KiB write: latency and bytes")
}

func renderPageCache(w writer, r *Results, fig map[string]float64, img func(string, string)) {
	p := r.PageCache
	w("\n## 4. Page-cache sharing\n\n")
	if p == nil {
		w("Not measured in this run.\n")
		return
	}
	w("%d layers on one parent are mounted; after `sync` and `drop_caches` each reads the parent's %d MiB file in turn,\n", p.Layers, p.FileMiB)
	w("and `Cached` in /proc/meminfo is sampled after each read.\n\n")
	w("| layers read | thin growth | overlay2 growth |\n| --- | --- | --- |\n")
	for i := 0; i < p.Layers && i < len(p.Thin) && i < len(p.Overlay); i++ {
		w("| %d | %s | %s |\n", i+1, fmtBytes(float64(p.Thin[i])), fmtBytes(float64(p.Overlay[i])))
	}
	w("\nthin/overlay2 after %d layers: %s. ", p.Layers, fmtX(fig["pagecache_thin_vs_overlay"]))
	w("overlay2 layers open the same lower inode, so the file is cached once. Each thin snapshot is its own block\n")
	w("device with its own ext4 and its own inodes: the same blocks are cached once per layer. On top of that the pool's\n")
	w("loop device reads its backing file through the page cache (buffered loop): %s of the data file was cached at the\n", fmtBytes(float64(p.ThinDataFile)))
	w("end, counted once.\n")
	img("pagecache.svg", "page cache growth per layer read")
}

func renderLayer(w writer, r *Results, img func(string, string)) {
	l := r.Layer
	w("\n## 5. Creating and mounting a layer\n\n")
	if l == nil {
		w("Not measured in this run.\n")
		return
	}
	w("A writable layer on a parent: thin `Pool.Create` + `Pool.Mount` (snapshot, activate, mount ext4) against overlay2\n")
	w("`CreateReadWrite` + `Get` (directories, link, overlay mount); then `Unmount` + `Remove` against `Put` + `Remove`.\n\n")
	w("| | thin | overlay2 | thin / overlay2 |\n| --- | --- | --- | --- |\n")
	w("| create + mount | %s | %s | %s |\n", fmtMs(Median(l.ThinCreateMountMs)), fmtMs(Median(l.OverlayCreateMountMs)), fmtX(Ratio(Median(l.ThinCreateMountMs), Median(l.OverlayCreateMountMs))))
	w("| unmount + remove | %s | %s | %s |\n", fmtMs(Median(l.ThinUnmountRemoveMs)), fmtMs(Median(l.OverlayUnmountRemoves)), fmtX(Ratio(Median(l.ThinUnmountRemoveMs), Median(l.OverlayUnmountRemoves))))
	img("layer.svg", "layer create+mount and unmount+remove")
}

func renderTradeoffs(w writer, r *Results, fig map[string]float64) {
	w("\n## Trade-offs, plainly\n\n")
	if oc := r.OpCost; oc != nil {
		w("- **thinctl against dmsetup.** Without a process per step thinctl is %s faster to create and activate a\n", fmtX(fig["create_vs_dmsetup"]))
		w("  snapshot and %s faster to deactivate and delete one. What it buys on top of dmsetup's work: a registry kept\n", fmtX(fig["remove_vs_dmsetup"]))
		w("  durable on disk and a transaction around every pool message, so a crash at any point is finished or undone\n")
		w("  at the next Open; one static binary, no udev dependency.\n")
		w("- **thinctl against the floor.** That bookkeeping costs %s (create) and %s (remove) the bare ioctls.\n", fmtX(fig["create_vs_floor"]), fmtX(fig["remove_vs_floor"]))
		w("  A library create makes the floor's one metadata commit (`create_snap`), reads the pool's free space with\n")
		w("  `DM_NOFLUSH_FLAG` (no commit), and appends its intent and its record to the registry's journal\n")
		w("  (docs/registry.md); a remove likewise around `delete`.\n")
		if lib, dis := oc.Paths[PathLibrary], oc.Paths[PathLibraryDiscard]; lib != nil && dis != nil {
			w("- **Discards.** Discarding on remove (the default) gives the space back to the filesystem holding the pool's\n")
			w("  data file; deactivate + remove costs %s what it costs without, %s the floor's deactivate + delete.\n",
				fmtX(Ratio(dis.Settled(), lib.Remove())), fmtX(fig["remove_discard_vs_floor"]))
		}
	}
	if s := r.Scale; s != nil && len(s.Levels) > 0 {
		w("- **Scale.** With %d devices already in the pool an operation costs %s what it costs with %d; opening such a\n",
			s.Levels[len(s.Levels)-1].Devices, fmtX(fig["scale_10000_vs_100"]), s.Levels[0].Devices)
		w("  root reads every device record and takes %s.\n", fmtMs(Median(s.OpenMs)))
	}
	if c := r.CoW; c != nil {
		w("- **Copy-on-write granularity** is where thin snapshots win: the first small write into a big inherited file\n")
		w("  copies %s of pool blocks instead of the whole %d MiB file, and is %s faster than overlay2's copy-up. The bigger\n",
			fmtBytes(MedianInt(c.Thin.StoreBytes)), c.FileMiB, fmtX(fig["cow4k_overlay_vs_thin"]))
		w("  the files a container modifies in place (databases, logs, images), the bigger the difference.\n")
	}
	if p := r.PageCache; p != nil {
		w("- **Page-cache sharing** is where overlay2 wins: %d layers reading one inherited file cost %s of page cache\n", p.Layers, fmtX(fig["pagecache_thin_vs_overlay"]))
		w("  with thin snapshots against overlay2, because every snapshot is a separate block device and filesystem. On a\n")
		w("  host running many containers from one image this multiplies memory use; density favours overlay2.\n")
	}
	if l := r.Layer; l != nil {
		w("- **Layer setup.** Creating and mounting a layer costs %s with thin against %s with overlay2 (a snapshot,\n",
			fmtMs(Median(l.ThinCreateMountMs)), fmtMs(Median(l.OverlayCreateMountMs)))
		w("  a device activation and an ext4 mount against a few directories and one overlay mount).\n")
	}
	w("- **Other differences this benchmark does not time:** thin devices have a fixed size (a layer can fill up, the\n")
	w("  pool can run out of space and must be watched), support any filesystem feature (no overlay quirks with\n")
	w("  rename, hard links or inotify), and keep per-layer quotas for free; overlay2 needs no pool sizing at all.\n")
}

// renderUdev is measurement 1 again in make bench's second guest, with
// systemd-udevd and the device-mapper rules running.
func renderUdev(w writer, r *Results, fig map[string]float64) {
	oc := r.UdevOpCost
	w("\n### With udev running\n\n")
	if oc == nil {
		w("Not measured in this run (make bench's second boot runs `thinctl-bench run -only opcost` with udev).\n")
		return
	}
	w("A second guest boots with systemd-udevd and the device-mapper rules running, as on every RHEL-like host,\n")
	w("and runs the same interleaved measurement with %d devices × %s. dmsetup waits for udev's\n", oc.Devices, reps(doneReps(oc)))
	w("rules to finish each create and remove (its udev cookie); thinctl waits for the node it uses.\n\n")
	pathTable(w, oc, pathOrder)
	w("\nRatios: dmsetup/thinctl %s (create, `create_vs_dmsetup_udev`) and %s (remove, `remove_vs_dmsetup_udev`)",
		fmtX(fig["create_vs_dmsetup_udev"]), fmtX(fig["remove_vs_dmsetup_udev"]))
	lib, floor := oc.Paths[PathLibrary], oc.Paths[PathFloor]
	if lib != nil && floor != nil {
		w("; thinctl/floor %s and %s", fmtX(Ratio(lib.Create(), floor.Create())), fmtX(Ratio(lib.Remove(), floor.Remove())))
	}
	w(".\n")
	if e := r.UdevEnv; e != nil {
		w("That guest: %s, udev running %v, started %s.\n", e.Kernel, e.Udev, e.Started)
	}
}

// renderPeers is measurement 6.
func renderPeers(w writer, r *Results, fig map[string]float64) {
	pe := r.Peers
	w("\n## 6. The tools an operator would pick instead: one process per action\n\n")
	if pe == nil {
		w("Not measured in this run.\n")
		return
	}
	w("Command against command in the same guest and run, %d snapshots × %s, interleaved device by device like\n", pe.Devices, reps(doneReps(pe)))
	w("measurement 1. thinctl runs one process per action on the library's root (each pays for opening the root:\n")
	w("lock, registry, pool status). lvm2 (Debian's package, test only) has a thin pool LV of the same size and chunk\n")
	w("size (%d KiB, zeroing off, no spare metadata LV) on a loop device of its own and a 1 GiB thin LV with ext4,\n", r.Config.BlockKiB)
	w("inactive like thinctl's origin; it runs with its own `LVM_SYSTEM_DIR` (udev sync and rules off, no\n")
	w("monitoring, no backups, no thin_check: nothing leaks into /etc/lvm). Each create is checked to have made an\n")
	w("active thin device (its table read back), each remove to have taken it away.\n\n")
	pathTable(w, pe, []string{PathCLI, PathProcFloor, PathDmsetupCLI, PathLVM})
	w("\nlvm/thinctl: %s (create, `create_vs_lvm`) and %s (remove, `remove_vs_lvm`); dmsetup's two processes against one\n",
		fmtX(fig["create_vs_lvm"]), fmtX(fig["remove_vs_lvm"]))
	w("`thinctl create --activate`: %s (`cli_create_vs_dmsetup`).\n", fmtX(fig["cli_create_vs_dmsetup"]))
	if pe.Paths[PathProcFloor] != nil {
		w("The process floor (`tests/bench/procfloor`) is a static Go program linking only the dm package that does one\n")
		w("thinctl process's kernel work (`create_snap` message, create, table load, resume; remove, `delete` message) with\n")
		w("no registry, root or flag parsing: the least one process per action costs. thinctl/floor: %s (create,\n", fmtX(fig["cli_create_vs_process_floor"]))
		w("`cli_create_vs_process_floor`) and %s (remove, `cli_remove_vs_process_floor`).\n", fmtX(fig["cli_remove_vs_process_floor"]))
	}
	if lib := r.OpCost; lib != nil {
		if l, c := lib.Paths[PathLibrary], pe.Paths[PathCLI]; l != nil && c != nil {
			w("A thinctl process costs %s more per create than the library call of measurement 1 (%s against %s): the\n",
				fmtMs(c.Create()-l.Create()), fmtMs(c.Create()), fmtMs(l.Create()))
			w("price of starting a process and opening the root.\n")
		}
	}
	renderOpenProfile(w, r.SmallProbes)
}

// renderOpenProfile says where a fresh process's thinpool.Open of the
// measurement's root spends its time, from the steps Open reports.
func renderOpenProfile(w writer, probes []Probe) {
	if len(probes) == 0 {
		return
	}
	// Each step's duration: from its report to the next one's (the last
	// step ends when Open returns).
	dur := map[string][]float64{}
	var order []string
	var open, proc, list []float64
	for _, p := range probes {
		open, proc, list = append(open, p.OpenMs), append(proc, p.ProcessMs), append(list, p.ListMs)
		for i, ph := range p.Phases {
			end := p.OpenMs
			if i+1 < len(p.Phases) {
				end = p.Phases[i+1].AtMs
			}
			if _, seen := dur[ph.Step]; !seen {
				order = append(order, ph.Step)
			}
			dur[ph.Step] = append(dur[ph.Step], end-ph.AtMs)
		}
	}
	w("\nWhat a thinctl process pays before its operation, measured in %d fresh processes that open this root (%d devices)\n", len(probes), probes[0].Devices)
	w("and list it (`thinctl-bench probe`): the process %s from fork to exit, of which `thinpool.Open` %s and\n", fmtMs(Median(proc)), fmtMs(Median(open)))
	w("`Pool.Devices` %s; Open's steps as it reports them (from one report to the next):\n\n", fmtMs(Median(list)))
	w("| step of thinpool.Open | median |\n| --- | --- |\n")
	for _, st := range order {
		w("| %s | %s |\n", st, fmtMs(Median(dur[st])))
	}
}

// renderConcurrency is measurement 7.
func renderConcurrency(w writer, r *Results, fig map[string]float64) {
	c := r.Concurrency
	w("\n## 7. Concurrent creators\n\n")
	if c == nil || len(c.Creators) == 0 {
		w("Not measured in this run.\n")
		return
	}
	w("k goroutines share one `Pool` and create + activate %d snapshots of the origin between them (each takes the\n", c.Total)
	w("next), then deactivate + remove them the same way. The kernel runs one pool message at a time; what can\n")
	w("overlap is the library's own work, its fsyncs and the activations.\n\n")
	w("| creators | create + activate, all | per second | deactivate + remove, all |\n| --- | --- | --- | --- |\n")
	for i, k := range c.Creators {
		w("| %d | %s | %.2f | %s |\n", k, fmtMs(c.CreateMs[i]), c.PerSec(i), fmtMs(c.RemoveMs[i]))
	}
	w("\nThroughput with %d creators / with %d: %s (`concurrent_8_vs_1`).\n", c.Creators[len(c.Creators)-1], c.Creators[0], fmtX(fig["concurrent_8_vs_1"]))
}

// sortedKeys returns m's keys in order.
func sortedKeys(m map[string]float64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

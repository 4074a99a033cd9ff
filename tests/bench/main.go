package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pkg/errors"
	"github.com/thinctl/thinctl/tests/bench/benchwire"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = runMain(os.Args[2:])
	case "report":
		err = reportMain(os.Args[2:])
	case "probe":
		err = probeMain(os.Args[2:])
	case "targets":
		err = targetsMain(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "thinctl-bench:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: thinctl-bench run [-quick] [flags] | thinctl-bench report -in FILE [flags] | thinctl-bench targets LOG...")
	os.Exit(2)
}

// runConfig is the run subcommand's flags.
type runConfig struct {
	Config
	work      string
	emulation string
	only      string
	discardN  int
	openReps  int
	peersN    int
	peersReps int
	concTotal int
	creators  []int
}

func parseRunFlags(args []string) (runConfig, error) {
	fl := flag.NewFlagSet("run", flag.ContinueOnError)
	var c runConfig
	tmp := os.Getenv("TMPDIR")
	if tmp == "" {
		tmp = "/var/tmp"
	}
	levels := fl.String("scale-levels", "", "pool sizes for the scale measurement (default 100,1000,10000; quick 100,1000)")
	fl.BoolVar(&c.Quick, "quick", false, "small counts (a few minutes in the VM)")
	fl.StringVar(&c.work, "work", filepath.Join(tmp, "thinctl-bench"), "work directory (removed first and at the end)")
	fl.StringVar(&c.emulation, "emulation", "", "describe the machine (the VM script says qemu TCG); guessed when empty")
	fl.StringVar(&c.Revision, "rev", "", "source revision to record (run.sh passes git describe)")
	fl.StringVar(&c.only, "only", "", "comma-separated sections to run: opcost,breakdown,peers,concurrency,layer,cow,pagecache,scale (default all)")
	fl.IntVar(&c.Devices, "n", 0, "devices per repetition of the operation cost (default 60; quick 40)")
	fl.IntVar(&c.Reps, "reps", 0, "repetitions of the operation cost (default 3)")
	fl.IntVar(&c.ScaleOps, "scale-ops", 0, "devices per scale repetition (default 50; quick 20)")
	fl.IntVar(&c.ScaleReps, "scale-reps", 3, "repetitions at each scale level")
	fl.IntVar(&c.CoWFileMiB, "cow-mib", 256, "size of the parent file of the copy-on-write measurement")
	fl.IntVar(&c.CoWReps, "cow-reps", 0, "repetitions of the copy-on-write measurement (default 5; quick 3)")
	fl.IntVar(&c.PCFileMiB, "pagecache-mib", 64, "size of the file every layer reads")
	fl.IntVar(&c.PCLayers, "pagecache-layers", 10, "layers reading it")
	fl.IntVar(&c.LayerReps, "layer-reps", 0, "repetitions of layer create+mount (default 15; quick 5)")
	fl.IntVar(&c.ProfileN, "profile-n", 50, "library create+remove cycles under the CPU profiler")
	fl.IntVar(&c.discardN, "discard-reps", -1, "repetitions of the discards-on library path (0: skip it; default: every repetition)")
	fl.IntVar(&c.PeersN, "peers-n", 0, "devices per repetition of the one-process-per-action peers (default 30; quick 10)")
	fl.IntVar(&c.PeersReps, "peers-reps", 1, "repetitions of the peers")
	fl.IntVar(&c.ConcTotal, "conc-total", 0, "devices the concurrent creators make between them (default 48; quick 16)")
	creators := fl.String("creators", "1,4,8", "numbers of concurrent creators (goroutines on one Pool)")
	fl.StringVar(&c.Populate, "populate", "", "how the scale measurement fills the pool: restore (thin_restore + registry records; the default with thin tools), raw (create_snap messages + registry records) or library (Pool.Create)")
	fl.IntVar(&c.openReps, "open-reps", 3, "thinpool.Open repetitions at the largest scale level")
	if err := fl.Parse(args); err != nil {
		return c, err
	}
	def := func(v *int, full, quick int) {
		if *v == 0 {
			*v = map[bool]int{false: full, true: quick}[c.Quick]
		}
	}
	def(&c.Devices, 60, 40)
	def(&c.Reps, 3, 3)
	def(&c.ScaleOps, 50, 20)
	def(&c.CoWReps, 5, 3)
	def(&c.LayerReps, 15, 5)
	def(&c.PeersN, 30, 10)
	def(&c.ConcTotal, 48, 16)
	if c.discardN < 0 {
		c.discardN = c.Reps
	}
	if *creators != "" {
		var err error
		if c.creators, err = parseLevels(*creators); err != nil {
			return c, errors.Wrap(err, "-creators")
		}
	}
	spec := *levels
	if spec == "" {
		spec = map[bool]string{false: "100,1000,10000", true: "100,1000"}[c.Quick]
	}
	var err error
	if c.ScaleLevels, err = parseLevels(spec); err != nil {
		return c, err
	}
	c.BlockKiB = int(poolBlock >> 10)
	c.DeviceMiB = int(deviceSize >> 20)
	if c.Populate == "" {
		c.Populate = defaultPopulate()
	}
	if c.Populate != PopulateRaw && c.Populate != PopulateLibrary && c.Populate != PopulateRestore {
		return c, errors.Errorf("-populate %q: use restore, raw or library", c.Populate)
	}
	return c, nil
}

// parseLevels reads an increasing comma-separated list of positive counts.
func parseLevels(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, errors.Errorf("scale level %q: want a positive count", f)
		}
		if len(out) > 0 && n <= out[len(out)-1] {
			return nil, errors.Errorf("scale levels %q: want increasing counts", s)
		}
		out = append(out, n)
	}
	return out, nil
}

func (c runConfig) wants(section string) bool {
	if c.only == "" {
		return true
	}
	for _, s := range strings.Split(c.only, ",") {
		if strings.TrimSpace(s) == section {
			return true
		}
	}
	return false
}

func logf(format string, args ...any) {
	fmt.Printf("bench %s "+format+"\n", append([]any{time.Now().UTC().Format("15:04:05")}, args...)...)
}

func runMain(args []string) error {
	c, err := parseRunFlags(args)
	if err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("run needs root (it makes loop, device-mapper and overlay devices)")
	}
	res := &Results{Config: c.Config, Elapsed: map[string]Secs{}}
	res.Env = detectEnv(c.emulation, filepath.Dir(c.work))
	logf("environment: kernel %s, %d CPUs (%s), %d MiB, %s, dm %s, udev %v", res.Env.Kernel, res.Env.CPUs,
		res.Env.CPUModel, res.Env.MemTotalMB, res.Env.Emulation, res.Env.DMVersion, res.Env.Udev)
	t0 := time.Now()
	r, err := newRig(c.work, logf)
	if err != nil {
		return err
	}
	res.Elapsed["setup"] = Secs(time.Since(t0).Seconds())
	var prof []byte
	runErr := runSections(r, c, res, &prof)
	if runErr != nil {
		res.Notes = append(res.Notes, "run stopped early: "+runErr.Error())
		logf("ERROR: %v", runErr)
	}
	if os.Getenv("THINCTL_VM") == "1" {
		logf("in the throwaway VM: skipping cleanup")
	} else {
		t := time.Now()
		if err := r.cleanup(); err != nil {
			logf("cleanup: %v", err)
		}
		res.Elapsed["cleanup"] = Secs(time.Since(t).Seconds())
	}
	if err := WriteResults(os.Stdout, res); err != nil {
		return err
	}
	if len(prof) > 0 {
		if err := benchwire.Write(os.Stdout, profileTag, prof); err != nil {
			return err
		}
	}
	for _, b := range BenchFigures(res) {
		fmt.Println(b.Line())
	}
	return runErr
}

// runSections runs the measurements in an order that keeps the pool small
// for the operation costs and fills it only at the end (scale).
func runSections(r *rig, c runConfig, res *Results, prof *[]byte) error {
	section := func(name string, fn func() error) error {
		if !c.wants(name) {
			return nil
		}
		logf("=== %s ===", name)
		t := time.Now()
		err := fn()
		res.Elapsed[name] = Secs(time.Since(t).Seconds())
		// A results block after every section: a run killed later (the
		// VM's timeout) still leaves what it measured on the console.
		if werr := WriteResults(os.Stdout, res); werr != nil && err == nil {
			err = werr
		}
		return errors.Wrap(err, name)
	}
	var err error
	// With udev running (make bench's second boot) measurement 1 fills the
	// _udev figures.
	opc := &res.OpCost
	if res.Env.Udev {
		opc = &res.UdevOpCost
	}
	if err := section("opcost", func() error {
		*opc, err = r.opCost(c.Devices, c.Reps, min(c.discardN, c.Reps), func(oc *OpCost) {
			// Each finished repetition is printed: a run cut short keeps them.
			*opc = oc
			_ = WriteResults(os.Stdout, res)
		})
		return err
	}); err != nil {
		return err
	}
	// The peers and the concurrent creators share the pool with the
	// measurements that follow; a failure there is reported and the run
	// goes on.
	if err := section("peers", func() error {
		var notes []string
		for i := 0; i < 5; i++ {
			p, err := r.probe()
			if err != nil {
				return err
			}
			res.SmallProbes = append(res.SmallProbes, p)
		}
		res.Peers, notes, err = r.peers(c.PeersN, c.PeersReps)
		res.Notes = append(res.Notes, notes...)
		return err
	}); err != nil {
		res.Notes = append(res.Notes, "measurement 6 failed: "+err.Error())
		logf("ERROR: %v (the run goes on)", err)
	}
	if err := section("concurrency", func() error {
		res.Concurrency, err = r.concurrency(c.creators, c.ConcTotal)
		return err
	}); err != nil {
		res.Notes = append(res.Notes, "measurement 7 failed: "+err.Error())
		logf("ERROR: %v (the run goes on)", err)
	}
	if err := section("breakdown", func() error {
		if res.Breakdown, err = r.breakdown(max(c.Reps*10, 20)); err != nil {
			return err
		}
		*prof, err = r.profileLibrary(c.ProfileN)
		return err
	}); err != nil {
		return err
	}
	needParents := c.wants("layer") || c.wants("cow") || c.wants("pagecache")
	if needParents {
		for _, b := range r.backends() {
			if err := makeParent(b, cowParent, bigFile, int64(c.CoWFileMiB)<<20); err != nil {
				return err
			}
			if err := makeParent(b, pcParent, bigFile, int64(c.PCFileMiB)<<20); err != nil {
				return err
			}
		}
	}
	if err := section("layer", func() error {
		res.Layer, err = r.layerCost(c.LayerReps)
		return err
	}); err != nil {
		return err
	}
	if err := section("cow", func() error {
		res.CoW, err = r.cow(c.CoWFileMiB, c.CoWReps)
		return err
	}); err != nil {
		return err
	}
	if err := section("pagecache", func() error {
		res.PageCache, err = r.pageCache(c.PCFileMiB, c.PCLayers)
		return err
	}); err != nil {
		return err
	}
	if needParents {
		for _, b := range r.backends() {
			for _, id := range []string{cowParent, pcParent} {
				if err := b.remove(id); err != nil {
					return errors.Wrapf(err, "%s: remove %s", b.name(), id)
				}
			}
		}
	}
	return section("scale", func() error {
		res.Scale, err = r.scale(c.ScaleLevels, c.ScaleOps, c.ScaleReps, c.openReps, c.Populate)
		return err
	})
}

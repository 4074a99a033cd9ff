package main

import (
	"encoding/json"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pkg/errors"
	"github.com/thinctl/thinctl/tests/bench/benchwire"
)

// Results is everything one run measured. The guest prints it (gzip, base64,
// one "BENCHJSON " line per chunk) and the host-side report reads it back.
type Results struct {
	Env       Env         `json:"env"`
	Config    Config      `json:"config"`
	OpCost    *OpCost     `json:"op_cost,omitempty"`
	Breakdown []Component `json:"breakdown,omitempty"`
	Scale     *Scale      `json:"scale,omitempty"`
	CoW       *CoW        `json:"cow,omitempty"`
	PageCache *PageCache  `json:"page_cache,omitempty"`
	Layer     *LayerCost  `json:"layer,omitempty"`
	// UdevOpCost is measurement 1 run in a guest with udev running (the
	// second boot of make bench): the _udev figures.
	UdevOpCost *OpCost `json:"op_cost_udev,omitempty"`
	UdevEnv    *Env    `json:"env_udev,omitempty"` // the udev guest, when merged from its own run
	Peers      *OpCost `json:"peers,omitempty"`    // measurement 6: one process per action
	// SmallProbes open the root of measurement 6 (two devices) in fresh
	// processes: what each thinctl process pays before its operation.
	SmallProbes []Probe      `json:"small_probes,omitempty"`
	Concurrency *Concurrency `json:"concurrency,omitempty"` // measurement 7
	// PeerBench holds BENCH lines of peer stages (other modules' benchmarks
	// run by tests/bench/run.sh, e.g. containerd's devmapper snapshotter).
	PeerBench map[string]float64 `json:"peer_bench,omitempty"`
	// Containerd is the peer stage containerd_devmapper's record
	// (containerd.go).
	Containerd *benchwire.Ctrd `json:"containerd,omitempty"`
	// CSI is the peer stage csi_lvm's record (csi.go).
	CSI     *CSIBench       `json:"csi,omitempty"`
	Notes   []string        `json:"notes,omitempty"`
	Elapsed map[string]Secs `json:"elapsed_s,omitempty"` // wall time per section
}

// Secs is a duration in seconds.
type Secs float64

// Env is where the run happened.
type Env struct {
	Kernel     string `json:"kernel"`
	CPUs       int    `json:"cpus"`
	CPUModel   string `json:"cpu_model"`
	MemTotalMB int    `json:"mem_total_mib"`
	Emulation  string `json:"emulation"` // "qemu TCG (software emulation)", "native", ...
	DMVersion  string `json:"dm_version"`
	Dmsetup    string `json:"dmsetup"`
	ScratchFS  string `json:"scratch_fs"`
	Udev       bool   `json:"udev"`
	GoVersion  string `json:"go"`
	Started    string `json:"started"`
}

// Config is the counts a run used.
type Config struct {
	Quick       bool   `json:"quick"`
	Devices     int    `json:"devices"`      // N of measurement 1
	Reps        int    `json:"reps"`         // repetitions of measurement 1
	ProfileN    int    `json:"profile_n"`    // library cycles under the CPU profiler
	ScaleLevels []int  `json:"scale_levels"` // pool sizes of measurement 2
	ScaleOps    int    `json:"scale_ops"`    // devices per scale repetition
	ScaleReps   int    `json:"scale_reps"`
	CoWFileMiB  int    `json:"cow_file_mib"`
	CoWReps     int    `json:"cow_reps"`
	PCFileMiB   int    `json:"pagecache_file_mib"`
	PCLayers    int    `json:"pagecache_layers"`
	LayerReps   int    `json:"layer_reps"`
	BlockKiB    int    `json:"pool_block_kib"`
	DeviceMiB   int    `json:"device_mib"`
	Revision    string `json:"revision,omitempty"` // git describe of the tree that was built
	Populate    string `json:"populate"`           // how measurement 2 filled the pool: raw or library
	PeersN      int    `json:"peers_devices"`      // devices per repetition of measurement 6
	PeersReps   int    `json:"peers_reps"`
	ConcTotal   int    `json:"conc_total"` // devices the creators of measurement 7 make between them
}

// The operation-cost paths of measurement 1.
const (
	PathLibrary        = "thinctl"         // thinpool library, registry durable, discards off
	PathLibraryDiscard = "thinctl-discard" // thinpool library with discard on remove
	PathDmsetup        = "dmsetup"         // dmsetup processes, containerd style
	PathFloor          = "floor"           // bare dm ioctls, no registry

	// Measurement 6, one process per action.
	PathCLI        = "thinctl-cli"   // thinctl create --activate; thinctl remove
	PathDmsetupCLI = "dmsetup-cli"   // dmsetup message + create; dmsetup remove + message
	PathLVM        = "lvm"           // lvcreate -s -kn -ay; lvremove -f
	PathProcFloor  = "process-floor" // thinctl-procfloor create; thinctl-procfloor remove
)

// OpCost is measurement 1: per-device milliseconds of each phase, one value
// per repetition (the mean over Devices devices).
type OpCost struct {
	Devices int                  `json:"devices"`
	Paths   map[string]*PathCost `json:"paths"`
}

// PathCost holds one path's per-repetition per-device means.
type PathCost struct {
	CreateMs []float64 `json:"create_ms"` // create_snap + activate
	RemoveMs []float64 `json:"remove_ms"` // deactivate + delete
	// Flushes per device: of the pool's metadata device (one per metadata
	// commit) and of the scratch disk (fsyncs and commits reaching it).
	CreateMetaFlushes []float64 `json:"create_meta_flushes,omitempty"`
	RemoveMetaFlushes []float64 `json:"remove_meta_flushes,omitempty"`
	CreateDiskFlushes []float64 `json:"create_disk_flushes,omitempty"`
	RemoveDiskFlushes []float64 `json:"remove_disk_flushes,omitempty"`
	// RemoveSettledMs is, for a path that returns space in the background,
	// the remove call plus the wait until the pool's status no longer
	// reports space being returned (per device, per repetition).
	RemoveSettledMs []float64 `json:"remove_settled_ms,omitempty"`
}

// Settled returns the median remove cost including the wait for the space
// to be returned; the remove cost when the path does not wait.
func (p *PathCost) Settled() float64 {
	if p == nil {
		return math.NaN()
	}
	if len(p.RemoveSettledMs) > 0 {
		return Median(p.RemoveSettledMs)
	}
	return p.Remove()
}

// Create returns the median create+activate cost.
func (p *PathCost) Create() float64 {
	if p == nil {
		return math.NaN()
	}
	return Median(p.CreateMs)
}

// Remove returns the median deactivate+delete cost.
func (p *PathCost) Remove() float64 {
	if p == nil {
		return math.NaN()
	}
	return Median(p.RemoveMs)
}

// Component is one measured piece of the library's per-operation work.
type Component struct {
	Name string  `json:"name"`
	Ms   float64 `json:"ms"`   // median per call
	Note string  `json:"note"` // what it is
}

// Scale is measurement 2.
type Scale struct {
	Levels []ScaleLevel `json:"levels"`
	OpenMs []float64    `json:"open_ms"` // thinpool.Open of the root at the largest level
	OpenAt int          `json:"open_at"`
	// Probes are child processes that open the root at the largest level
	// and list it (thinctl-bench probe): Open time and peak RSS.
	Probes   []Probe `json:"probes,omitempty"`
	Populate []Fill  `json:"populate"` // library Create cost while filling
}

// ScaleLevel is the library's per-device cost with Devices already in the pool.
type ScaleLevel struct {
	Devices   int       `json:"devices"`
	CreateMs  []float64 `json:"create_ms"`
	RemoveMs  []float64 `json:"remove_ms"`
	OpenMs    float64   `json:"open_ms,omitempty"` // thinpool.Open right after filling (raw populate)
	ReadDirMs float64   `json:"readdir_ms"`        // os.ReadDir of the registry's devices/ (median)
}

// Probe is one child process that opened a root and listed its devices.
type Probe struct {
	Devices   int     `json:"devices"`    // devices the list returned
	OpenMs    float64 `json:"open_ms"`    // thinpool.Open, timed in the child
	ListMs    float64 `json:"list_ms"`    // Pool.Devices
	ProcessMs float64 `json:"process_ms"` // the whole process, fork to exit
	MaxRSSKiB int64   `json:"max_rss_kib"`
	Phases    []Phase `json:"phases,omitempty"` // Open's progress steps
}

// Phase is one progress step thinpool.Open reported, and when (from the
// start of Open).
type Phase struct {
	Step string  `json:"step"`
	AtMs float64 `json:"at_ms"`
}

// Concurrency is measurement 7: k goroutines on one Pool create (and
// activate) Total devices between them; then they remove them.
type Concurrency struct {
	Total    int       `json:"total"`
	Creators []int     `json:"creators"`
	CreateMs []float64 `json:"create_ms"` // wall time of the creates at each k
	RemoveMs []float64 `json:"remove_ms"` // wall time of the removes at each k
}

// PerSec is creates per second with Creators[i] creators.
func (c *Concurrency) PerSec(i int) float64 { return float64(c.Total) / (c.CreateMs[i] / 1000) }

// CycleMs is the median per-device create+activate+deactivate+remove cost.
func (l ScaleLevel) CycleMs() float64 { return Median(l.CreateMs) + Median(l.RemoveMs) }

// Fill is one stretch of populating: the mean Create cost from From to To devices.
type Fill struct {
	From, To int
	Ms       float64 `json:"ms"`
}

// CoW is measurement 3.
type CoW struct {
	FileMiB int      `json:"file_mib"`
	Thin    CoWSide  `json:"thin"`
	Overlay CoWSide  `json:"overlay"`
	Notes   []string `json:"notes,omitempty"`
}

// CoWSide is one backend's first-write figures, one entry per repetition.
type CoWSide struct {
	LatencyMs    []float64 `json:"latency_ms"`     // open + 4 KiB pwrite + fsync + close
	OpenWriteMs  []float64 `json:"open_write_ms"`  // open + pwrite only (overlay copies up at open)
	DiskBytes    []int64   `json:"disk_bytes"`     // sectors written to the scratch disk * 512
	StoreBytes   []int64   `json:"store_bytes"`    // thin: pool data used delta; overlay: upper dir growth
	FileBytes    []int64   `json:"file_bytes"`     // thin: data file allocation delta; overlay: copied-up file allocation
	PoolBlockKiB int       `json:"pool_block_kib"` // thin only
}

// PageCache is measurement 4: Cached growth after each layer read.
type PageCache struct {
	FileMiB int     `json:"file_mib"`
	Layers  int     `json:"layers"`
	Thin    []int64 `json:"thin_bytes"`    // cumulative growth after layer 1..Layers
	Overlay []int64 `json:"overlay_bytes"` // same for overlay2
	// ThinDataFile is how much of the pool's data file was resident at the
	// end (mincore), the loop device's share of the thin growth.
	ThinDataFile int64 `json:"thin_data_file_bytes"`
}

// Final returns the growth after the last layer, or NaN.
func finalGrowth(xs []int64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	return float64(xs[len(xs)-1])
}

// LayerCost is measurement 5.
type LayerCost struct {
	ThinCreateMountMs     []float64 `json:"thin_create_mount_ms"`
	ThinUnmountRemoveMs   []float64 `json:"thin_unmount_remove_ms"`
	OverlayCreateMountMs  []float64 `json:"overlay_create_mount_ms"`
	OverlayUnmountRemoves []float64 `json:"overlay_unmount_remove_ms"`
}

// Median returns the median of xs (NaN for none), leaving xs untouched.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// MedianInt is Median for byte counts.
func MedianInt(xs []int64) float64 {
	f := make([]float64, len(xs))
	for i, x := range xs {
		f[i] = float64(x)
	}
	return Median(f)
}

// Ratio returns num/den, NaN when either is not a positive finite number.
func Ratio(num, den float64) float64 {
	if !(num > 0) || !(den > 0) || math.IsInf(num, 0) || math.IsInf(den, 0) {
		return math.NaN()
	}
	return num / den
}

// FormatRatio prints a ratio with two decimals ("NaN" when unknown).
func FormatRatio(r float64) string {
	if math.IsNaN(r) || math.IsInf(r, 0) {
		return "NaN"
	}
	return strconv.FormatFloat(r, 'f', 2, 64)
}

// The BENCH names, in the order the program prints them last.
var benchNames = []string{
	"create_vs_floor",
	"remove_vs_floor",
	"create_vs_dmsetup",
	"remove_vs_dmsetup",
	"remove_discard_vs_floor",
	"create_vs_dmsetup_udev",
	"remove_vs_dmsetup_udev",
	"create_vs_lvm",
	"remove_vs_lvm",
	"cli_create_vs_dmsetup",
	"cli_create_vs_process_floor",
	"cli_remove_vs_process_floor",
	"scale_10000_vs_100",
	"open_10000_ms",
	"concurrent_8_vs_1",
	"rss_10000_mib",
	"cow4k_overlay_vs_thin",
	"pagecache_thin_vs_overlay",
}

// Bench is one machine-readable figure.
type Bench struct {
	Name  string
	Value float64
}

// Line formats b as the program prints it: "BENCH name=value".
func (b Bench) Line() string { return "BENCH " + b.Name + "=" + FormatRatio(b.Value) }

// BenchFigures computes the figures from r, in the contract's order, then
// any peer stage's figures by name. A figure whose measurement did not run
// is NaN.
func BenchFigures(r *Results) []Bench {
	v := map[string]float64{}
	for _, n := range benchNames {
		v[n] = math.NaN()
	}
	if oc := r.OpCost; oc != nil {
		lib, dms, floor := oc.Paths[PathLibrary], oc.Paths[PathDmsetup], oc.Paths[PathFloor]
		v["create_vs_dmsetup"] = Ratio(dms.Create(), lib.Create())
		v["remove_vs_dmsetup"] = Ratio(dms.Remove(), lib.Remove())
		v["create_vs_floor"] = Ratio(lib.Create(), floor.Create())
		v["remove_vs_floor"] = Ratio(lib.Remove(), floor.Remove())
		v["remove_discard_vs_floor"] = Ratio(oc.Paths[PathLibraryDiscard].Settled(), floor.Remove())
	}
	if oc := r.UdevOpCost; oc != nil {
		lib, dms := oc.Paths[PathLibrary], oc.Paths[PathDmsetup]
		v["create_vs_dmsetup_udev"] = Ratio(dms.Create(), lib.Create())
		v["remove_vs_dmsetup_udev"] = Ratio(dms.Remove(), lib.Remove())
	}
	if pe := r.Peers; pe != nil {
		cli, lvm, dms := pe.Paths[PathCLI], pe.Paths[PathLVM], pe.Paths[PathDmsetupCLI]
		v["create_vs_lvm"] = Ratio(lvm.Create(), cli.Create())
		v["remove_vs_lvm"] = Ratio(lvm.Remove(), cli.Remove())
		v["cli_create_vs_dmsetup"] = Ratio(dms.Create(), cli.Create())
		pf := pe.Paths[PathProcFloor]
		v["cli_create_vs_process_floor"] = Ratio(cli.Create(), pf.Create())
		v["cli_remove_vs_process_floor"] = Ratio(cli.Remove(), pf.Remove())
	}
	if s := r.Scale; s != nil && len(s.Levels) > 0 {
		lo, hi := s.Levels[0], s.Levels[len(s.Levels)-1]
		v["scale_10000_vs_100"] = Ratio(hi.CycleMs(), lo.CycleMs())
		if len(s.Probes) > 0 {
			var open, rss []float64
			for _, p := range s.Probes {
				open = append(open, p.OpenMs)
				rss = append(rss, float64(p.MaxRSSKiB)/1024)
			}
			v["open_10000_ms"] = Median(open)
			v["rss_10000_mib"] = Median(rss)
		}
	}
	if c := r.Concurrency; c != nil && len(c.Creators) > 1 {
		last := len(c.Creators) - 1
		v["concurrent_8_vs_1"] = Ratio(c.PerSec(last), c.PerSec(0))
	}
	if c := r.CoW; c != nil {
		v["cow4k_overlay_vs_thin"] = Ratio(Median(c.Overlay.LatencyMs), Median(c.Thin.LatencyMs))
	}
	if pc := r.PageCache; pc != nil {
		v["pagecache_thin_vs_overlay"] = Ratio(finalGrowth(pc.Thin), finalGrowth(pc.Overlay))
	}
	out := make([]Bench, 0, len(benchNames)+len(r.PeerBench))
	for _, n := range benchNames {
		out = append(out, Bench{Name: n, Value: v[n]})
	}
	var peer []string
	for n := range r.PeerBench {
		if _, ours := v[n]; !ours {
			peer = append(peer, n)
		}
	}
	sort.Strings(peer)
	for _, n := range peer {
		out = append(out, Bench{Name: n, Value: r.PeerBench[n]})
	}
	return out
}

// ParseBenchLines reads "BENCH name=value" lines out of console text (other
// lines and carriage returns are ignored); the last value of a name wins.
func ParseBenchLines(text string) (map[string]float64, error) {
	out := map[string]float64{}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(strings.TrimRight(line, "\r"))
		rest, ok := strings.CutPrefix(line, "BENCH ")
		if !ok {
			continue
		}
		name, val, ok := strings.Cut(rest, "=")
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			return nil, errors.Errorf("malformed BENCH line %q: want BENCH name=value", line)
		}
		f, err := strconv.ParseFloat(val, 64)
		if err != nil {
			return nil, errors.Errorf("malformed BENCH line %q: value is not a number", line)
		}
		out[name] = f
	}
	return out, nil
}

// Tags of the blocks on the console (see benchwire).
const (
	resultsTag = "BENCHJSON"
	profileTag = "BENCHPROF"
)

// WriteResults prints r as gzip+base64 lines between markers.
func WriteResults(w io.Writer, r *Results) error {
	data, err := json.Marshal(r)
	if err != nil {
		return errors.Wrap(err, "encode results")
	}
	return benchwire.Write(w, resultsTag, data)
}

// ReadResults finds the last results block in console text and decodes it.
func ReadResults(text string) (*Results, error) {
	data, err := benchwire.Read(text, resultsTag)
	if err != nil {
		return nil, errors.Wrap(err, "results block")
	}
	var r Results
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, errors.Wrap(err, "decode results JSON")
	}
	return &r, nil
}

// ReadProfile returns the last CPU profile block in console text (nil when none).
func ReadProfile(text string) ([]byte, error) {
	if !benchwire.Has(text, profileTag) {
		return nil, nil
	}
	return benchwire.Read(text, profileTag)
}

// ms converts a duration to float milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

package main

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/thinctl/thinctl/tests/bench/benchwire"
)

func TestMedian(t *testing.T) {
	tests := []struct {
		name string
		in   []float64
		want float64
	}{
		{"an odd count gives the middle value", []float64{5, 1, 3}, 3},
		{"an even count gives the mean of the two middle values", []float64{4, 1, 3, 2}, 2.5},
		{"one value is its own median", []float64{7}, 7},
		{"an outlier does not move it", []float64{1, 2, 1000}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]float64(nil), tt.in...)
			if got := Median(tt.in); got != tt.want {
				t.Errorf("Median(%v) = %v, want %v", tt.in, got, tt.want)
			}
			for i := range in {
				if in[i] != tt.in[i] {
					t.Fatalf("Median reordered its input: %v", tt.in)
				}
			}
		})
	}
	if !math.IsNaN(Median(nil)) {
		t.Error("Median of nothing should be NaN")
	}
	if got := MedianInt([]int64{10, 30, 20}); got != 20 {
		t.Errorf("MedianInt = %v, want 20", got)
	}
}

func TestRatioAndFormat(t *testing.T) {
	tests := []struct {
		name     string
		num, den float64
		want     string
	}{
		{"a plain ratio has two decimals", 167, 23.5, "7.11"},
		{"an exact ratio keeps its zeros", 3, 1, "3.00"},
		{"a zero denominator is unknown", 1, 0, "NaN"},
		{"a missing measurement is unknown", math.NaN(), 2, "NaN"},
		{"a negative time is unknown", -1, 2, "NaN"},
		{"an infinite time is unknown", math.Inf(1), 2, "NaN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FormatRatio(Ratio(tt.num, tt.den)); got != tt.want {
				t.Errorf("FormatRatio(Ratio(%v, %v)) = %q, want %q", tt.num, tt.den, got, tt.want)
			}
		})
	}
}

// sample is a results value with every measurement filled in.
func sample() *Results {
	return &Results{
		Config: Config{Devices: 200, Reps: 3, ScaleLevels: []int{100, 1000, 10000}},
		OpCost: &OpCost{Devices: 200, Paths: map[string]*PathCost{
			PathLibrary: {CreateMs: []float64{30, 20, 25}, RemoveMs: []float64{40, 40, 40}},
			PathDmsetup: {CreateMs: []float64{150, 200, 160}, RemoveMs: []float64{120, 130, 125}},
			PathFloor:   {CreateMs: []float64{20, 20, 20}, RemoveMs: []float64{32, 32, 32}},
			// The settled time (space returned) counts, not the call's.
			PathLibraryDiscard: {CreateMs: []float64{30}, RemoveMs: []float64{40}, RemoveSettledMs: []float64{48}},
		}},
		UdevOpCost: &OpCost{Devices: 50, Paths: map[string]*PathCost{
			PathLibrary: {CreateMs: []float64{100}, RemoveMs: []float64{50}},
			PathDmsetup: {CreateMs: []float64{300}, RemoveMs: []float64{110}},
		}},
		Peers: &OpCost{Devices: 40, Paths: map[string]*PathCost{
			PathCLI:        {CreateMs: []float64{100}, RemoveMs: []float64{80}},
			PathDmsetupCLI: {CreateMs: []float64{250}, RemoveMs: []float64{200}},
			PathLVM:        {CreateMs: []float64{600}, RemoveMs: []float64{560}},
			PathProcFloor:  {CreateMs: []float64{80}, RemoveMs: []float64{50}},
		}},
		Concurrency: &Concurrency{Total: 48, Creators: []int{1, 4, 8}, CreateMs: []float64{4800, 2400, 1600}, RemoveMs: []float64{1, 1, 1}},
		Scale: &Scale{Levels: []ScaleLevel{
			{Devices: 100, CreateMs: []float64{20}, RemoveMs: []float64{20}},
			{Devices: 1000, CreateMs: []float64{22}, RemoveMs: []float64{21}},
			{Devices: 10000, CreateMs: []float64{30}, RemoveMs: []float64{30}},
		}, Probes: []Probe{{OpenMs: 900, MaxRSSKiB: 40 << 10}, {OpenMs: 700, MaxRSSKiB: 50 << 10}, {OpenMs: 800, MaxRSSKiB: 45 << 10}}},
		PeerBench: map[string]float64{"containerd_create_vs_thinctl": 2.5, "create_vs_floor": 9},
		CoW:       &CoW{Thin: CoWSide{LatencyMs: []float64{2, 4, 3}}, Overlay: CoWSide{LatencyMs: []float64{300, 330, 900}}},
		PageCache: &PageCache{Thin: []int64{64 << 20, 640 << 20}, Overlay: []int64{64 << 20, 64 << 20}},
	}
}

func TestBenchFigures(t *testing.T) {
	want := []string{
		"BENCH create_vs_floor=1.25",
		"BENCH remove_vs_floor=1.25",
		"BENCH create_vs_dmsetup=6.40",
		"BENCH remove_vs_dmsetup=3.12",
		"BENCH remove_discard_vs_floor=1.50",
		"BENCH create_vs_dmsetup_udev=3.00",
		"BENCH remove_vs_dmsetup_udev=2.20",
		"BENCH create_vs_lvm=6.00",
		"BENCH remove_vs_lvm=7.00",
		"BENCH cli_create_vs_dmsetup=2.50",
		"BENCH cli_create_vs_process_floor=1.25",
		"BENCH cli_remove_vs_process_floor=1.60",
		"BENCH scale_10000_vs_100=1.50",
		"BENCH open_10000_ms=800.00",
		"BENCH concurrent_8_vs_1=3.00",
		"BENCH rss_10000_mib=45.00",
		"BENCH cow4k_overlay_vs_thin=110.00",
		"BENCH pagecache_thin_vs_overlay=10.00",
		// A peer stage's own figure follows ours; one of our names from
		// a peer does not replace our measurement.
		"BENCH containerd_create_vs_thinctl=2.50",
	}
	got := BenchFigures(sample())
	if len(got) != len(want) {
		t.Fatalf("%d figures, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].Line() != want[i] {
			t.Errorf("figure %d = %q, want %q", i, got[i].Line(), want[i])
		}
	}
}

func TestBenchFiguresOfAPartialRunAreNaN(t *testing.T) {
	got := BenchFigures(&Results{OpCost: &OpCost{Paths: map[string]*PathCost{PathLibrary: {CreateMs: []float64{1}}}}})
	for _, b := range got {
		if !strings.HasSuffix(b.Line(), "=NaN") {
			t.Errorf("%s: want NaN when a side is missing", b.Line())
		}
	}
}

func TestParseBenchLines(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    map[string]float64
		wantErr bool
	}{
		{"lines among console noise are found", "boot\r\nBENCH a=1.50\r\nVM done\nBENCH b=NaN\n", map[string]float64{"a": 1.5}, false},
		{"the last value of a name wins", "BENCH a=1\nBENCH a=2\n", map[string]float64{"a": 2}, false},
		{"a line without = is an error", "BENCH a 1\n", nil, true},
		{"a value that is not a number is an error", "BENCH a=fast\n", nil, true},
		{"text that only mentions BENCH is ignored", "BENCHJSON abc\nno BENCH here\n", map[string]float64{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseBenchLines(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s = %v, want %v", k, got[k], v)
				}
			}
			for k, v := range got {
				if _, ok := tt.want[k]; !ok && !math.IsNaN(v) {
					t.Errorf("unexpected figure %s=%v", k, v)
				}
			}
		})
	}
}

func TestBenchLinesRoundTripThroughTheParser(t *testing.T) {
	var out strings.Builder
	for _, b := range BenchFigures(sample()) {
		out.WriteString(b.Line() + "\n")
	}
	got, err := ParseBenchLines(out.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(benchNames)+1 { // + the peer stage's figure
		t.Fatalf("parsed %d figures, want %d", len(got), len(benchNames)+1)
	}
	if got["create_vs_dmsetup"] != 6.4 {
		t.Errorf("create_vs_dmsetup = %v", got["create_vs_dmsetup"])
	}
}

func TestResultsSurviveTheConsole(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteResults(&buf, sample()); err != nil {
		t.Fatal(err)
	}
	// The serial console adds carriage returns and other output around
	// the block; an earlier, interrupted block must not be picked.
	console := "BENCHJSON-BEGIN\nBENCHJSON broken\n[ 12.3] kernel says hi\n" +
		strings.ReplaceAll(buf.String(), "\n", "\r\n") + "BENCH create_vs_dmsetup=6.40\r\n"
	r, err := ReadResults(console)
	if err != nil {
		t.Fatal(err)
	}
	if r.OpCost.Paths[PathDmsetup].Create() != 160 || r.Scale.Levels[2].Devices != 10000 {
		t.Errorf("decoded results differ: %+v", r.OpCost.Paths[PathDmsetup])
	}
}

func TestReadResultsWithoutABlockSaysSo(t *testing.T) {
	for _, in := range []string{"", "BENCHJSON-BEGIN\nBENCHJSON QUJD\n", "BENCHJSON-BEGIN\nBENCHJSON !!!\nBENCHJSON-END\n"} {
		if _, err := ReadResults(in); err == nil {
			t.Errorf("ReadResults(%q) succeeded", in)
		}
	}
}

func TestProfileBlockIsOptional(t *testing.T) {
	if p, err := ReadProfile("no profile here"); p != nil || err != nil {
		t.Errorf("ReadProfile without a block = %v, %v", p, err)
	}
	var buf bytes.Buffer
	if err := benchwire.Write(&buf, profileTag, []byte("pprof bytes")); err != nil {
		t.Fatal(err)
	}
	p, err := ReadProfile(buf.String())
	if err != nil || string(p) != "pprof bytes" {
		t.Errorf("ReadProfile = %q, %v", p, err)
	}
}

func TestEveryFigureHasATargetAndTheSummarySaysItsVerdict(t *testing.T) {
	figs := BenchFigures(sample())
	lines := SummaryLines(figs)
	if len(lines) != len(figs) {
		t.Fatalf("%d summary lines for %d figures", len(lines), len(figs))
	}
	for _, n := range benchNames {
		if targetFor(n).Meaning == "" {
			t.Errorf("%s has no target entry", n)
		}
	}
	want := map[string][]string{
		"create_vs_floor":        {"1.25×", "goal ≤ 1.2×", "missed by 1.04×"},
		"create_vs_dmsetup_udev": {"3.00×", "goal ≥ 2.5×", "met"},
		"open_10000_ms":          {"800 ms", "goal ≤ 1000 ms", "met"},
		"rss_10000_mib":          {"45 MiB", "goal ≤ 64 MiB", "met"},
		"concurrent_8_vs_1":      {"3.00×", "goal none (reported)", "—"},
	}
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) < 2 || f[0] != "TARGET" {
			t.Fatalf("summary line %q", l)
		}
		for _, w := range want[f[1]] {
			if !strings.Contains(l, w) {
				t.Errorf("summary line %q lacks %q", l, w)
			}
		}
	}
}

func TestTargetVerdicts(t *testing.T) {
	tests := []struct {
		name string
		fig  string
		v    float64
		want string
	}{
		{"a speed-up at the goal is met", "create_vs_dmsetup", 5, "met"},
		{"a speed-up under the goal says how far", "create_vs_dmsetup", 2.5, "missed by 2.00× (50% of the goal)"},
		{"an overhead under the cap is met", "create_vs_floor", 1.2, "met"},
		{"an overhead over the cap says by how much", "remove_vs_floor", 2.4, "missed by 2.00×"},
		{"a time over its cap says by how much", "open_10000_ms", 1500, "missed by 1.50×"},
		{"a memory figure under its cap is met", "rss_10000_mib", 64, "met"},
		{"a reported figure has no verdict", "concurrent_8_vs_1", 3, "—"},
		{"a trade-off figure has no verdict", "cow4k_overlay_vs_thin", 80, "—"},
		{"a missing figure is not measured", "scale_10000_vs_100", math.NaN(), "not measured"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := targetFor(tt.fig).Verdict(tt.v); got != tt.want {
				t.Errorf("Verdict(%v) = %q, want %q", tt.v, got, tt.want)
			}
		})
	}
}

func TestParseLevels(t *testing.T) {
	tests := []struct {
		in      string
		want    []int
		wantErr bool
	}{
		{"100,1000,10000", []int{100, 1000, 10000}, false},
		{" 5 , 50 ", []int{5, 50}, false},
		{"100,10", nil, true},
		{"0", nil, true},
		{"ten", nil, true},
	}
	for _, tt := range tests {
		got, err := parseLevels(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("parseLevels(%q) err = %v", tt.in, err)
			continue
		}
		if len(got) != len(tt.want) {
			t.Errorf("parseLevels(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestParseMeminfo(t *testing.T) {
	text := []byte("MemTotal:        2014208 kB\nCached:           123456 kB\nSwapCached:            0 kB\n")
	if v, err := parseMeminfo(text, "Cached"); err != nil || v != 123456 {
		t.Errorf("Cached = %d, %v (SwapCached must not match)", v, err)
	}
	if _, err := parseMeminfo(text, "Buffers"); err == nil {
		t.Error("a missing field should be an error")
	}
}

func TestQuickFlagsShrinkTheCounts(t *testing.T) {
	c, err := parseRunFlags([]string{"-quick"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Devices != 40 || len(c.ScaleLevels) != 2 || c.ScaleLevels[1] != 1000 {
		t.Errorf("quick config = %+v", c.Config)
	}
	full, err := parseRunFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if full.Devices != 60 || full.ScaleLevels[2] != 10000 || full.PeersN != 30 || full.ConcTotal != 48 || full.discardN != full.Reps {
		t.Errorf("full config = %+v (discard reps %d)", full.Config, full.discardN)
	}
	if _, err := parseRunFlags([]string{"-creators", "4,1"}); err == nil {
		t.Error("decreasing creator counts should be refused")
	}
	if _, err := parseRunFlags([]string{"-populate", "magic"}); err == nil {
		t.Error("an unknown populate method should be refused")
	}
}

func TestReportRendersEveryFigureAndSurvivesAnEmptyRun(t *testing.T) {
	md := renderReport(sample(), "", "bench", map[string]bool{"opcost.svg": true})
	for _, want := range []string{
		"| `create_vs_dmsetup` | 6.40× |",
		"| `scale_10000_vs_100` | 1.50× |",
		"BENCH pagecache_thin_vs_overlay=10.00\n",
		"![operation cost per device](bench/opcost.svg)",
		"| `open_10000_ms` | 800 ms |",
		"### With udev running",
		"## 6. The tools an operator would pick instead",
		"lvm/thinctl: 6.00× (create, `create_vs_lvm`)",
		"## 7. Concurrent creators",
		"| 8 | 1.60 s | 30.00 | 1.0 ms |",
		"peak RSS",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(md, "scale.svg") {
		t.Error("report links a plot that was not drawn")
	}
	empty := renderReport(&Results{}, "", "bench", nil)
	if !strings.Contains(empty, "Not measured in this run.") || !strings.Contains(empty, "BENCH create_vs_dmsetup=NaN") {
		t.Error("an empty run should render with NaN figures and 'not measured' sections")
	}
}

func TestPlotsOnlyForMeasuredSections(t *testing.T) {
	names := map[string]bool{}
	for _, p := range plotsFor(sample()) {
		names[p.name] = true
		if !strings.Contains(p.body, "DATA") || p.data == "" {
			t.Errorf("%s: no data or no DATA reference", p.name)
		}
	}
	for _, n := range []string{"opcost.svg", "scale.svg", "cow.svg", "pagecache.svg"} {
		if !names[n] {
			t.Errorf("no %s for a run that measured it", n)
		}
	}
	if names["layer.svg"] {
		t.Error("layer.svg without a layer measurement")
	}
	if len(plotsFor(&Results{})) != 0 {
		t.Error("plots for an empty run")
	}
}

func TestAddThinDevicesGoesInsideTheSuperblock(t *testing.T) {
	dump := "<superblock uuid=\"\" transaction=\"7\">\n  <device dev_id=\"1\">\n  </device>\n</superblock>\n"
	got, err := addThinDevices(dump, 7, 100, 2)
	if err != nil {
		t.Fatal(err)
	}
	want := "<superblock uuid=\"\" transaction=\"7\">\n  <device dev_id=\"1\">\n  </device>\n" +
		"  <device dev_id=\"100\" mapped_blocks=\"0\" transaction=\"7\" creation_time=\"0\" snap_time=\"0\">\n  </device>\n" +
		"  <device dev_id=\"101\" mapped_blocks=\"0\" transaction=\"7\" creation_time=\"0\" snap_time=\"0\">\n  </device>\n" +
		"</superblock>\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if _, err := addThinDevices("<nothing/>", 1, 1, 1); err == nil {
		t.Error("a dump without a superblock should be refused")
	}
}

func TestParseBlockStat(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    int64
		wantErr bool
	}{
		{"a 17-field line gives field 16", "3374 1 55264 2174 2086 3515 713328 4334 0 4444 8782 12 0 98316 7 1123 2266\n", 1123, false},
		{"an old kernel without flush fields counts none", "3374 1 55264 2174 2086 3515 713328 4334 0 4444 8782\n", 0, false},
		{"a short line is an error", "1 2 3\n", 0, true},
		{"a flush field that is not a number is an error", "1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 x 17", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseBlockStat(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if got.Flushes != tt.want {
				t.Errorf("flushes = %d, want %d", got.Flushes, tt.want)
			}
		})
	}
}

func TestMergeFillsOnlyMissingSections(t *testing.T) {
	first := &Results{OpCost: sample().OpCost, Config: Config{Devices: 200, Revision: "abc"}}
	second := sample()
	second.OpCost.Paths[PathLibrary].CreateMs = []float64{999}
	second.Config.Revision = "abc"
	second.Elapsed = map[string]Secs{"scale": 60}
	mergeResults(first, second)
	if first.OpCost.Paths[PathLibrary].Create() != 25 {
		t.Error("a section the first run has must not be replaced")
	}
	if first.Scale == nil || first.CoW == nil || first.PageCache == nil {
		t.Error("sections only the second run has must be taken")
	}
	if len(first.Notes) != 1 || !strings.Contains(first.Notes[0], "2 (scale), 3 (copy-on-write), 4 (page cache)") {
		t.Errorf("notes = %q", first.Notes)
	}
	if first.Elapsed["scale"] != 60 {
		t.Errorf("elapsed = %v", first.Elapsed)
	}
}

func TestTheContainerdComparisonIsReadFromItsStagesLog(t *testing.T) {
	want := &benchwire.Ctrd{
		PrepareMs: map[string][]float64{"thinctl": {400, 500, 600, 300}, "devmapper": {2000, 2200}},
		ImportMs:  map[string]float64{"thinctl": 40000, "devmapper": 96000},
	}
	data, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := benchwire.Write(&buf, benchwire.CtrdTag, data); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		console string
		found   bool
	}{
		{"a log without the test has no comparison", "BENCH create_vs_dmsetup=6.40\n", false},
		{"the block among the test's console output is found", "=== RUN   TestBenchVsContainerdDevmapper\r\n" +
			strings.ReplaceAll(buf.String(), "\n", "\r\n") + "BENCH prepare_vs_ctrd_devmapper=4.67\r\n--- PASS\r\n", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadCtrdBench(tt.console)
			if err != nil {
				t.Fatal(err)
			}
			if (got != nil) != tt.found {
				t.Fatalf("found %v, want %v", got != nil, tt.found)
			}
			if got != nil && (got.ImportMs["devmapper"] != 96000 || len(got.PrepareMs["thinctl"]) != 4) {
				t.Errorf("decoded %+v, want %+v", got, want)
			}
		})
	}
	if _, err := ReadCtrdBench("BENCHCTRD-BEGIN\nBENCHCTRD !!!\nBENCHCTRD-END\n"); err == nil {
		t.Error("a damaged block was read without an error")
	}
}

func TestTheContainerdSectionComparesTheSnapshotters(t *testing.T) {
	r := &Results{
		PeerBench: map[string]float64{"prepare_vs_ctrd_devmapper": 4.67, "remove_vs_ctrd_devmapper": 1.5, "import_vs_ctrd_devmapper": 2.4},
		Containerd: &benchwire.Ctrd{
			PrepareMs: map[string][]float64{"thinctl": {400, 500, 600, 300}, "devmapper": {2000, 2200}, "overlayfs": {60}},
			RemoveMs:  map[string][]float64{"thinctl": {1000}, "devmapper": {1500}, "overlayfs": {20}},
			ImportMs:  map[string]float64{"thinctl": 40000, "devmapper": 96000},
			ServerMs:  map[string][]float64{"Prepare.activate": {300}},
			IOErrors:  []benchwire.CtrdIOErrors{{Phase: "remove/devmapper", Count: 20, Devices: []string{"dm-9=ctrd-bench-pool-snap-9"}}},
		},
	}
	md := renderReport(r, "", "bench", map[string]bool{})
	for _, want := range []string{
		"## 8. Against containerd's devmapper snapshotter",
		"| Prepare+Mounts | 450 ms | 2.10 s | 60 ms | 4.67× | ≥ 5× |",
		"| Remove | 1.00 s | 1.50 s | 20 ms | 1.50× | ≥ 3× |",
		"| import of 0 layers | 40.00 s | 96.00 s | | 2.40× | ≥ 2× |",
		"| of which activation",
		"| remove/devmapper | 20 | dm-9=ctrd-bench-pool-snap-9 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("the report lacks %q", want)
		}
	}
}

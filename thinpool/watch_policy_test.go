package thinpool

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// status is a pool reading with data and metadata use in bytes.
func status(dataUsed, dataTotal, metaUsed, metaTotal uint64) Status {
	return Status{PoolName: "tp", State: "rw", BlockSize: 64 * KiB,
		DataUsed: dataUsed, DataTotal: dataTotal, MetadataUsed: metaUsed, MetadataTotal: metaTotal,
		DataUsedPercent: percent(dataUsed, dataTotal), MetadataUsedPercent: percent(metaUsed, metaTotal)}
}

func roomyHost() HostSpace {
	return HostSpace{Loop: true, Total: 100 * GiB, Free: 50 * GiB, DataSize: GiB, MetadataSize: 64 * MiB, MetadataAllocated: 64 * MiB}
}

func TestAPoolUnderTheThresholdIsNotGrownButGetsItsLowWaterMark(t *testing.T) {
	d := WatchPolicy{Threshold: 70, Step: 20}.Decide(WatchInput{Status: status(600*MiB, GiB, MiB, 64*MiB), Host: roomyHost()})
	if d.NewDataSize != 0 || d.NewMetadataSize != 0 || d.RunCommand {
		t.Fatalf("decision %+v: want no growth", d)
	}
	// 16384 blocks of 64 KiB; an event when 30% of them are left.
	if d.LowWaterBlocks != 4915 || !d.Queue {
		t.Fatalf("low water %d, queue %v: want 4915 blocks and queueing", d.LowWaterBlocks, d.Queue)
	}
}

func TestDataAtTheThresholdGrowsByTheStepAndBelowTheThreshold(t *testing.T) {
	d := WatchPolicy{Threshold: 70, Step: 20}.Decide(WatchInput{Status: status(800*MiB, GiB, MiB, 64*MiB), Host: roomyHost()})
	// 1 GiB * 1.2 = 1228.8 MiB leaves 800 MiB at 65%: one step is enough.
	if want := roundUp(GiB+GiB/5, 64*KiB); d.NewDataSize != want || d.NewMetadataSize != 0 {
		t.Fatalf("decision %+v: want data %d", d, want)
	}
	// The low water mark is for the grown pool: 30% of its 19661 blocks.
	if d.LowWaterBlocks != 5898 {
		t.Fatalf("low water mark %d after growth, want 5898", d.LowWaterBlocks)
	}
	d = WatchPolicy{Threshold: 50, Step: 10}.Decide(WatchInput{Status: status(1000*MiB, GiB, MiB, 64*MiB), Host: roomyHost()})
	if pct := percent(1000*MiB, d.NewDataSize); pct >= 50 {
		t.Fatalf("grown to %d bytes, data is still %.1f%% used", d.NewDataSize, pct)
	}
}

func TestMetadataAtTheThresholdGrowsWithinTheKernelsLimit(t *testing.T) {
	d := WatchPolicy{Threshold: 80, Step: 50}.Decide(WatchInput{Status: status(MiB, GiB, 15*GiB, MaxMetadataSize), Host: roomyHost()})
	if d.NewMetadataSize != 0 || len(d.Held) != 1 || !strings.Contains(d.Held[0], "capped") {
		t.Fatalf("decision %+v: metadata at the kernel's limit cannot grow", d)
	}
	d = WatchPolicy{Threshold: 80, Step: 50}.Decide(WatchInput{Status: status(MiB, GiB, 60*MiB, 64*MiB), Host: roomyHost()})
	if d.NewMetadataSize != 96*MiB {
		t.Fatalf("metadata grown to %d, want 96 MiB", d.NewMetadataSize)
	}
}

func TestGrowthStopsAtTheCap(t *testing.T) {
	pol := WatchPolicy{Threshold: 70, Step: 50, MaxDataSize: GiB + 100*MiB}
	d := pol.Decide(WatchInput{Status: status(900*MiB, GiB, MiB, 64*MiB), Host: roomyHost()})
	if d.NewDataSize != GiB+100*MiB || d.Queue || len(d.Held) != 1 || !strings.Contains(d.Held[0], "capped") {
		t.Fatalf("decision %+v: want growth to the cap, no queueing and a held reason", d)
	}
	d = pol.Decide(WatchInput{Status: status(1000*MiB, GiB+100*MiB, MiB, 64*MiB), Host: roomyHost()})
	if d.NewDataSize != 0 || d.Queue {
		t.Fatalf("decision %+v at the cap: want no growth and writes failing at once", d)
	}
}

func TestGrowthLeavesTheHostReserveFree(t *testing.T) {
	host := roomyHost()
	host.Free = 2 * GiB // the sparse data file may still take 1 GiB of it
	pol := WatchPolicy{Threshold: 70, Step: 50, HostReserve: GiB - 100*MiB}
	d := pol.Decide(WatchInput{Status: status(900*MiB, GiB, MiB, 64*MiB), Host: host})
	if d.NewDataSize != GiB+100*MiB || len(d.Held) != 1 || !strings.Contains(d.Held[0], "reserve") || d.Queue {
		t.Fatalf("decision %+v: want 100 MiB of growth, held by the reserve", d)
	}
	host.Free = GiB // already promised all of it
	if d := pol.Decide(WatchInput{Status: status(900*MiB, GiB, MiB, 64*MiB), Host: host}); d.NewDataSize != 0 {
		t.Fatalf("decision %+v: a host that cannot hold the promise gives no growth", d)
	}
}

func TestAutoextendOffOnlyWarns(t *testing.T) {
	for _, th := range []float64{0, 100} {
		d := WatchPolicy{Threshold: th}.Decide(WatchInput{Status: status(960*MiB, GiB, 55*MiB, 64*MiB), Host: roomyHost()})
		if d.NewDataSize != 0 || d.LowWaterBlocks != 0 || d.Queue || d.DataLevel != 90 || d.MetadataLevel != 85 {
			t.Fatalf("threshold %v: decision %+v", th, d)
		}
	}
}

func TestAPoolThatNeedsCheckIsNeverGrown(t *testing.T) {
	s := status(960*MiB, GiB, MiB, 64*MiB)
	s.NeedsCheck, s.State = true, "ro"
	if d := (WatchPolicy{Threshold: 50}).Decide(WatchInput{Status: s, Host: roomyHost()}); d.NewDataSize != 0 || d.Queue {
		t.Fatalf("decision %+v for a read-only pool", d)
	}
}

func TestAnExternalPoolAboveTheThresholdRunsTheCommand(t *testing.T) {
	pol := WatchPolicy{Threshold: 70}
	if d := pol.Decide(WatchInput{Status: status(100*MiB, GiB, 50*MiB, 64*MiB), External: true}); !d.RunCommand || d.NewMetadataSize != 0 {
		t.Fatalf("decision %+v: metadata at 78%% should run the command and grow nothing", d)
	}
	if d := pol.Decide(WatchInput{Status: status(100*MiB, GiB, MiB, 64*MiB), External: true}); d.RunCommand {
		t.Fatalf("decision %+v below the threshold", d)
	}
}

func TestTableTunedReadsTheLowWaterMarkAndTheOutOfSpaceMode(t *testing.T) {
	live := "253:1 253:2 128 32768 2 skip_block_zeroing error_if_no_space"
	if !tableTuned(live, tableTuning{}) || tableTuned(live, tableTuning{lowWater: 100}) || tableTuned(live, tableTuning{queue: true}) {
		t.Fatal("a default table is read wrong")
	}
	tuned := tunedPoolTable(unix.Mkdev(253, 1), unix.Mkdev(253, 2), 64*MiB, 64*KiB, true, tableTuning{lowWater: 410, queue: true})
	if tuned.Params != "253:1 253:2 128 410 2 skip_block_zeroing ignore_discard" || !tableTuned(tuned.Params, tableTuning{lowWater: 410, queue: true}) {
		t.Fatalf("tuned table %q", tuned.Params)
	}
	for _, bad := range []string{"", "253:1 253:2", "253:1 253:2 128 x 0"} {
		if tableTuned(bad, tableTuning{}) {
			t.Errorf("%q read as tuned", bad)
		}
	}
}

func TestTheMetricsFileIsReplacedWholeInTheTextfileFormat(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "thinctl.prom")
	st := status(GiB/2, GiB, MiB, 64*MiB)
	st.PoolName = `pool"with\quote`
	host := roomyHost()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(writeMetrics(path, st, metricsOf(st, host, 3, time.Unix(1700000000, 0))))
	b, err := os.ReadFile(path)
	must(err)
	for _, want := range []string{
		"# TYPE thinctl_pool_data_used_bytes gauge\nthinctl_pool_data_used_bytes{pool=\"pool\\\"with\\\\quote\"} 536870912\n",
		"thinctl_pool_watch_grows_total{pool=\"pool\\\"with\\\\quote\"} 3\n",
		"thinctl_pool_host_free_bytes{pool=\"pool\\\"with\\\\quote\"} 53687091200\n",
		"thinctl_pool_metadata_sparse{pool=\"pool\\\"with\\\\quote\"} 0\n",
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %q:\n%s", want, b)
		}
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
		t.Errorf("metrics file mode %v", fi.Mode())
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("temp files left: %v", ents)
	}
	// A directory that cannot be written leaves nothing behind and says so.
	if err := writeMetrics(filepath.Join(dir, "missing", "x.prom"), st, nil); err == nil {
		t.Error("writing into a missing directory succeeded")
	}
}

func TestHostSpaceCountsWhatTheSparseFilesMayStillTake(t *testing.T) {
	dir := t.TempDir()
	data, meta := filepath.Join(dir, "data"), filepath.Join(dir, "meta")
	for _, f := range []string{data, meta} {
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(f, int64(8*MiB)); err != nil {
			t.Fatal(err)
		}
	}
	h, err := hostSpace(data, meta)
	if err != nil {
		t.Fatal(err)
	}
	if !h.MetadataSparse() || h.Needed() != 16*MiB || !h.SameFilesystem || h.Free == 0 {
		t.Fatalf("sparse files: %+v", h)
	}
	if err := allocateMetadata(meta); err != nil {
		t.Fatal(err)
	}
	if h, _ = hostSpace(data, meta); h.MetadataSparse() || h.Needed() != 8*MiB {
		t.Fatalf("after allocating the metadata file: %+v (needed %d)", h, h.Needed())
	}
	if fi, _ := os.Stat(meta); fi.Size() != int64(8*MiB) {
		t.Fatalf("allocating changed the file's size to %d", fi.Size())
	}
	if (HostSpace{Free: MiB, DataSize: 3 * MiB}).Short() != 2*MiB {
		t.Fatal("Short")
	}
}

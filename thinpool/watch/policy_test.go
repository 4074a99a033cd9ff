package watch

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/thinctl/thinctl/thinpool"
	"github.com/thinctl/thinctl/thinpool/internal/bytesize"
)

// status is a pool reading with data and metadata use in bytes.
func status(dataUsed, dataTotal, metaUsed, metaTotal uint64) thinpool.Status {
	return thinpool.Status{PoolName: "tp", State: "rw", BlockSize: 64 * thinpool.KiB,
		DataUsed: dataUsed, DataTotal: dataTotal, MetadataUsed: metaUsed, MetadataTotal: metaTotal,
		DataUsedPercent: bytesize.Percent(dataUsed, dataTotal), MetadataUsedPercent: bytesize.Percent(metaUsed, metaTotal)}
}

func roomyHost() thinpool.HostSpace {
	return thinpool.HostSpace{Loop: true, Total: 100 * thinpool.GiB, Free: 50 * thinpool.GiB, DataSize: thinpool.GiB, MetadataSize: 64 * thinpool.MiB, MetadataAllocated: 64 * thinpool.MiB}
}

func TestAPoolUnderTheThresholdIsNotGrownButGetsItsLowWaterMark(t *testing.T) {
	d := Policy{Threshold: 70, Step: 20}.Decide(Input{Status: status(600*thinpool.MiB, thinpool.GiB, thinpool.MiB, 64*thinpool.MiB), Host: roomyHost()})
	if d.NewDataSize != 0 || d.NewMetadataSize != 0 || d.RunCommand {
		t.Fatalf("decision %+v: want no growth", d)
	}
	// 16384 blocks of 64 KiB; an event when 30% of them are left.
	if d.LowWaterBlocks != 4915 || !d.Queue {
		t.Fatalf("low water %d, queue %v: want 4915 blocks and queueing", d.LowWaterBlocks, d.Queue)
	}
}

func TestDataAtTheThresholdGrowsByTheStepAndBelowTheThreshold(t *testing.T) {
	d := Policy{Threshold: 70, Step: 20}.Decide(Input{Status: status(800*thinpool.MiB, thinpool.GiB, thinpool.MiB, 64*thinpool.MiB), Host: roomyHost()})
	// 1 GiB * 1.2 = 1228.8 MiB leaves 800 MiB at 65%: one step is enough.
	if want := bytesize.RoundUp(thinpool.GiB+thinpool.GiB/5, 64*thinpool.KiB); d.NewDataSize != want || d.NewMetadataSize != 0 {
		t.Fatalf("decision %+v: want data %d", d, want)
	}
	// The low water mark is for the grown pool: 30% of its 19661 blocks.
	if d.LowWaterBlocks != 5898 {
		t.Fatalf("low water mark %d after growth, want 5898", d.LowWaterBlocks)
	}
	d = Policy{Threshold: 50, Step: 10}.Decide(Input{Status: status(1000*thinpool.MiB, thinpool.GiB, thinpool.MiB, 64*thinpool.MiB), Host: roomyHost()})
	if pct := bytesize.Percent(1000*thinpool.MiB, d.NewDataSize); pct >= 50 {
		t.Fatalf("grown to %d bytes, data is still %.1f%% used", d.NewDataSize, pct)
	}
}

func TestMetadataAtTheThresholdGrowsWithinTheKernelsLimit(t *testing.T) {
	d := Policy{Threshold: 80, Step: 50}.Decide(Input{Status: status(thinpool.MiB, thinpool.GiB, 15*thinpool.GiB, thinpool.MaxMetadataSize), Host: roomyHost()})
	if d.NewMetadataSize != 0 || len(d.Held) != 1 || !strings.Contains(d.Held[0], "capped") {
		t.Fatalf("decision %+v: metadata at the kernel's limit cannot grow", d)
	}
	d = Policy{Threshold: 80, Step: 50}.Decide(Input{Status: status(thinpool.MiB, thinpool.GiB, 60*thinpool.MiB, 64*thinpool.MiB), Host: roomyHost()})
	if d.NewMetadataSize != 96*thinpool.MiB {
		t.Fatalf("metadata grown to %d, want 96 MiB", d.NewMetadataSize)
	}
}

func TestGrowthStopsAtTheCap(t *testing.T) {
	pol := Policy{Threshold: 70, Step: 50, MaxDataSize: thinpool.GiB + 100*thinpool.MiB}
	d := pol.Decide(Input{Status: status(900*thinpool.MiB, thinpool.GiB, thinpool.MiB, 64*thinpool.MiB), Host: roomyHost()})
	if d.NewDataSize != thinpool.GiB+100*thinpool.MiB || d.Queue || len(d.Held) != 1 || !strings.Contains(d.Held[0], "capped") {
		t.Fatalf("decision %+v: want growth to the cap, no queueing and a held reason", d)
	}
	d = pol.Decide(Input{Status: status(1000*thinpool.MiB, thinpool.GiB+100*thinpool.MiB, thinpool.MiB, 64*thinpool.MiB), Host: roomyHost()})
	if d.NewDataSize != 0 || d.Queue {
		t.Fatalf("decision %+v at the cap: want no growth and writes failing at once", d)
	}
}

func TestGrowthLeavesTheHostReserveFree(t *testing.T) {
	host := roomyHost()
	host.Free = 2 * thinpool.GiB // the sparse data file may still take 1 GiB of it
	pol := Policy{Threshold: 70, Step: 50, HostReserve: thinpool.GiB - 100*thinpool.MiB}
	d := pol.Decide(Input{Status: status(900*thinpool.MiB, thinpool.GiB, thinpool.MiB, 64*thinpool.MiB), Host: host})
	if d.NewDataSize != thinpool.GiB+100*thinpool.MiB || len(d.Held) != 1 || !strings.Contains(d.Held[0], "reserve") || d.Queue {
		t.Fatalf("decision %+v: want 100 MiB of growth, held by the reserve", d)
	}
	host.Free = thinpool.GiB // already promised all of it
	if d := pol.Decide(Input{Status: status(900*thinpool.MiB, thinpool.GiB, thinpool.MiB, 64*thinpool.MiB), Host: host}); d.NewDataSize != 0 {
		t.Fatalf("decision %+v: a host that cannot hold the promise gives no growth", d)
	}
}

func TestAutoextendOffOnlyWarns(t *testing.T) {
	for _, th := range []float64{0, 100} {
		d := Policy{Threshold: th}.Decide(Input{Status: status(960*thinpool.MiB, thinpool.GiB, 55*thinpool.MiB, 64*thinpool.MiB), Host: roomyHost()})
		if d.NewDataSize != 0 || d.LowWaterBlocks != 0 || d.Queue || d.DataLevel != 90 || d.MetadataLevel != 85 {
			t.Fatalf("threshold %v: decision %+v", th, d)
		}
	}
}

func TestAPoolThatNeedsCheckIsNeverGrown(t *testing.T) {
	s := status(960*thinpool.MiB, thinpool.GiB, thinpool.MiB, 64*thinpool.MiB)
	s.NeedsCheck, s.State = true, "ro"
	if d := (Policy{Threshold: 50}).Decide(Input{Status: s, Host: roomyHost()}); d.NewDataSize != 0 || d.Queue {
		t.Fatalf("decision %+v for a read-only pool", d)
	}
}

func TestAnExternalPoolAboveTheThresholdRunsTheCommand(t *testing.T) {
	pol := Policy{Threshold: 70}
	if d := pol.Decide(Input{Status: status(100*thinpool.MiB, thinpool.GiB, 50*thinpool.MiB, 64*thinpool.MiB), External: true}); !d.RunCommand || d.NewMetadataSize != 0 {
		t.Fatalf("decision %+v: metadata at 78%% should run the command and grow nothing", d)
	}
	if d := pol.Decide(Input{Status: status(100*thinpool.MiB, thinpool.GiB, thinpool.MiB, 64*thinpool.MiB), External: true}); d.RunCommand {
		t.Fatalf("decision %+v below the threshold", d)
	}
}

func TestTheMetricsFileIsReplacedWholeInTheTextfileFormat(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "thinctl.prom")
	st := status(thinpool.GiB/2, thinpool.GiB, thinpool.MiB, 64*thinpool.MiB)
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

package main

import (
	"fmt"
	"maps"
	"os"
	"strings"

	"github.com/pkg/errors"
)

// The CSI driver against lvm2: the core module cannot import the CSI
// module, so it is a test of that module (TestBenchCSIVsLVM in
// csi/cmd/thinctl-csi) that run.sh's peer stage csi_lvm runs in a guest boot
// of its own, without udev; the test prints its BENCH lines and a BENCHCSI
// line with the medians, which the report reads from the stage's log.

// CSIBench is the peer stage csi_lvm's medians, in milliseconds.
type CSIBench struct {
	CreateMs    float64 `json:"create_ms"`     // CreateVolume + NodeStageVolume + NodePublishVolume
	LVMCreateMs float64 `json:"lvm_create_ms"` // lvcreate of a thin LV + mkfs.ext4 + mount
	SnapMs      float64 `json:"snapshot_ms"`   // CreateSnapshot of a published volume
	LVMSnapMs   float64 `json:"lvm_snapshot_ms"`
	N           int     `json:"n"`
}

// ReadCSIBench returns the last BENCHCSI line of console text; nil when
// there is none.
func ReadCSIBench(text string) (*CSIBench, error) {
	var last string
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "BENCHCSI ") {
			last = strings.TrimSpace(line)
		}
	}
	if last == "" {
		return nil, nil
	}
	var c CSIBench
	if _, err := fmt.Sscanf(last, "BENCHCSI create_ms thinctl=%g lvm=%g snapshot_ms thinctl=%g lvm=%g n=%d",
		&c.CreateMs, &c.LVMCreateMs, &c.SnapMs, &c.LVMSnapMs, &c.N); err != nil {
		return nil, errors.Wrapf(err, "BENCHCSI line %q", last)
	}
	return &c, nil
}

func renderCSI(w writer, r *Results, fig map[string]float64) {
	c := r.CSI
	w("\n## 9. The CSI driver against lvm2\n\n")
	if c == nil {
		w("Not measured in this run (the peer stage `csi_lvm` of tests/bench/run.sh runs it; see docs/csi.md).\n")
		return
	}
	w("thinctl-csi serving a thinctl pool, and lvm2's commands on a volume group with a thin pool, in one guest without\n")
	w("udev: both pools 1 GiB of data and 64 MiB of metadata on loop devices, 64 KiB blocks, 64 MiB ext4 volumes. What\n")
	w("TopoLVM and lvm-localpv run for a volume is `lvcreate` of a thin LV, mkfs and a mount; the driver answers\n")
	w("CreateVolume, NodeStageVolume and NodePublishVolume through its gRPC socket. A snapshot is taken of a volume\n")
	w("just published and written to (`lvcreate -s` of the mounted LV against CreateSnapshot). Medians of %d.\n\n", c.N)
	w("| | thinctl-csi | lvm2 | lvm2 / thinctl-csi | goal |\n| --- | --- | --- | --- | --- |\n")
	t := targetFor("csi_create_vs_lvm")
	w("| a usable volume | %s | %s | %s | %s |\n", fmtMs(c.CreateMs), fmtMs(c.LVMCreateMs), t.Value(fig["csi_create_vs_lvm"]), t.Goal())
	t = targetFor("csi_snapshot_vs_lvm")
	w("| a snapshot | %s | %s | %s | %s |\n", fmtMs(c.SnapMs), fmtMs(c.LVMSnapMs), t.Value(fig["csi_snapshot_vs_lvm"]), t.Goal())
}

// targetsMain prints the BENCH lines of the logs it is given (a peer stage
// run on its own: tests/bench/run.sh --peer-only) and a TARGET line for
// each, without writing a report.
func targetsMain(logs []string) error {
	figs := map[string]float64{}
	for _, in := range logs {
		b, err := os.ReadFile(in)
		if err != nil {
			return err
		}
		f, err := ParseBenchLines(string(b))
		if err != nil {
			return errors.Wrap(err, in)
		}
		maps.Copy(figs, f)
	}
	var out []Bench
	for _, n := range sortedKeys(figs) {
		out = append(out, Bench{Name: n, Value: figs[n]})
	}
	for _, x := range out {
		fmt.Println(x.Line())
	}
	for _, l := range SummaryLines(out) {
		fmt.Println(l)
	}
	return nil
}

// Package benchwire is what crosses a guest's console between a benchmark
// run inside the VM and tests/bench's report on the host: binary records
// as gzip + base64 lines between TAG-BEGIN and TAG-END markers, and the
// record of the containerd comparison, which a test of the containerd
// module writes (the core module cannot import containerd) and the report
// reads.
package benchwire

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"fmt"
	"io"
	"strings"

	"github.com/pkg/errors"
)

// lineLen is the base64 characters per console line.
const lineLen = 76

// Write writes data to w as a block tagged tag: a "TAG-BEGIN" line, the
// gzip-compressed data in base64 on lines starting "TAG ", and "TAG-END".
func Write(w io.Writer, tag string, data []byte) error {
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	if _, err := zw.Write(data); err != nil {
		return errors.Wrapf(err, "compress the %s block", tag)
	}
	if err := zw.Close(); err != nil {
		return errors.Wrapf(err, "compress the %s block", tag)
	}
	enc := base64.StdEncoding.EncodeToString(z.Bytes())
	bw := bufio.NewWriter(w)
	fmt.Fprintln(bw, tag+"-BEGIN")
	for len(enc) > 0 {
		n := min(lineLen, len(enc))
		fmt.Fprintln(bw, tag+" "+enc[:n])
		enc = enc[n:]
	}
	fmt.Fprintln(bw, tag+"-END")
	return errors.Wrapf(bw.Flush(), "write the %s block", tag)
}

// Has reports whether text holds the start of a block tagged tag.
func Has(text, tag string) bool { return strings.Contains(text, tag+"-BEGIN") }

// Read returns the data of the last complete block tagged tag in console
// text (lines may carry a trailing carriage return or surrounding blanks;
// other lines may interleave).
func Read(text, tag string) ([]byte, error) {
	begin, prefix, end := tag+"-BEGIN", tag+" ", tag+"-END"
	var cur, last []string
	in, found := false, false
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(strings.TrimRight(line, "\r"))
		switch {
		case line == begin:
			in, cur = true, nil
		case line == end && in:
			in, found, last = false, true, cur
		case in && strings.HasPrefix(line, prefix):
			cur = append(cur, strings.TrimPrefix(line, prefix))
		}
	}
	if !found {
		return nil, errors.Errorf("no complete %s ... %s block in the output", begin, end)
	}
	z, err := base64.StdEncoding.DecodeString(strings.Join(last, ""))
	if err != nil {
		return nil, errors.Wrapf(err, "%s block: base64", tag)
	}
	zr, err := gzip.NewReader(bytes.NewReader(z))
	if err != nil {
		return nil, errors.Wrapf(err, "%s block: gzip", tag)
	}
	data, err := io.ReadAll(zr)
	return data, errors.Wrapf(err, "%s block: gzip", tag)
}

// CtrdTag tags the containerd comparison's block.
const CtrdTag = "BENCHCTRD"

// Ctrd is the comparison of thinctl-snapshotter with containerd's
// devmapper snapshotter, as the containerd module's
// TestBenchVsContainerdDevmapper measured it (JSON in a CtrdTag block).
type Ctrd struct {
	Udev      bool   `json:"udev"`
	Kernel    string `json:"kernel"`
	PerRound  int    `json:"per_round"`
	Rounds    int    `json:"rounds"`
	Layers    int    `json:"layers"`
	LayerKiB  int    `json:"layer_kib"`
	PoolMiB   int    `json:"pool_mib"`
	MetaMiB   int    `json:"meta_mib"`
	BlockKiB  int    `json:"block_kib"`
	DeviceMiB int    `json:"device_mib"`
	// Client-side milliseconds per snapshot, by snapshotter (thinctl,
	// devmapper, and overlayfs: containerd's own cost of the same calls).
	PrepareMs map[string][]float64 `json:"prepare_ms"`
	// One value per round: the synchronous lease delete / per_round.
	RemoveMs map[string][]float64 `json:"remove_ms"`
	ImportMs map[string]float64   `json:"import_ms"`
	// thinctl-snapshotter's own time per request (its --debug log), ms,
	// by method and pool step.
	ServerMs map[string][]float64 `json:"server_ms"`
	// Kernel "Buffer I/O error" lines, by phase.
	IOErrors []CtrdIOErrors `json:"io_errors,omitempty"`
}

// CtrdIOErrors counts the kernel's buffer I/O errors of one phase.
type CtrdIOErrors struct {
	Phase   string   `json:"phase"`
	Count   int      `json:"count"`
	Devices []string `json:"devices"` // "dm-N=name" for each device named, as named when logged
	Sample  string   `json:"sample"`
}

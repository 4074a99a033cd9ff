package watch

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/thinpool"
)

// metric is one gauge or counter of the metrics file.
type metric struct {
	name, help, kind string
	value            float64
}

// metricsOf is what Run writes for node_exporter's textfile collector.
func metricsOf(st thinpool.Status, host thinpool.HostSpace, grows int, now time.Time) []metric {
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	ms := []metric{
		{"thinctl_pool_data_used_bytes", "Data space the thin pool has allocated.", "gauge", float64(st.DataUsed)},
		{"thinctl_pool_data_size_bytes", "Data space of the thin pool.", "gauge", float64(st.DataTotal)},
		{"thinctl_pool_metadata_used_bytes", "Metadata space the thin pool uses.", "gauge", float64(st.MetadataUsed)},
		{"thinctl_pool_metadata_size_bytes", "Metadata space of the thin pool.", "gauge", float64(st.MetadataTotal)},
		{"thinctl_pool_devices", "Thin devices in the registry.", "gauge", float64(st.Devices)},
		{"thinctl_pool_read_only", "1 when the pool is read-only or failed.", "gauge", b(st.ReadOnly || st.Failed)},
		{"thinctl_pool_needs_check", "1 when the pool's metadata needs a check.", "gauge", b(st.NeedsCheck)},
		{"thinctl_pool_out_of_data_space", "1 when the pool is out of data space.", "gauge", b(st.OutOfDataSpace)},
		{"thinctl_pool_watch_grows_total", "Growths pool watch made since it started.", "counter", float64(grows)},
		{"thinctl_pool_watch_last_reading_seconds", "When pool watch last read the pool (Unix time).", "gauge", float64(now.Unix())},
	}
	if host.Loop {
		ms = append(ms,
			metric{"thinctl_pool_host_size_bytes", "Size of the filesystem holding the loop files.", "gauge", float64(host.Total)},
			metric{"thinctl_pool_host_free_bytes", "Free space of the filesystem holding the loop files.", "gauge", float64(host.Free)},
			metric{"thinctl_pool_host_needed_bytes", "Host space the sparse loop files may still take.", "gauge", float64(host.Needed())},
			metric{"thinctl_pool_metadata_sparse", "1 when the metadata file is not fully allocated.", "gauge", b(host.MetadataSparse())})
	}
	return ms
}

// formatMetrics renders ms for pool in the Prometheus text format.
func formatMetrics(pool string, ms []metric) string {
	var sb strings.Builder
	label := `{pool="` + escapeLabel(pool) + `"}`
	for _, m := range ms {
		fmt.Fprintf(&sb, "# HELP %s %s\n# TYPE %s %s\n%s%s %s\n", m.name, m.help, m.name, m.kind, m.name, label,
			strconv.FormatFloat(m.value, 'f', -1, 64))
	}
	return sb.String()
}

func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

// writeMetrics replaces path with the metrics atomically: a temp file in
// the same directory, fsynced, renamed over it, so the collector never
// reads half a file.
func writeMetrics(path string, st thinpool.Status, ms []metric) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return errors.Wrap(err, "metrics file")
	}
	tmp := f.Name()
	_, err = f.WriteString(formatMetrics(st.PoolName, ms))
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return errors.Wrapf(err, "write %s", path)
	}
	return nil
}

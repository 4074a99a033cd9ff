// Package bytesize holds the byte arithmetic and formatting thinpool and
// its pool watcher share: rounding sizes to a unit, percentages of a
// total, and sizes printed in binary units for messages ("1.5 GiB"; the
// root package units has the size grammar users type).
package bytesize

import "fmt"

// RoundUp rounds n up to a multiple of unit.
func RoundUp(n, unit uint64) uint64 { return (n + unit - 1) / unit * unit }

// RoundDown rounds n down to a multiple of unit.
func RoundDown(n, unit uint64) uint64 { return n / unit * unit }

// Percent is a of b in percent (0 when b is 0).
func Percent(a, b uint64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) * 100 / float64(b)
}

// Format prints n in the largest binary unit that keeps one decimal.
func Format(n uint64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"}
	f := float64(n)
	i := 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%d B", n)
	}
	return fmt.Sprintf("%.1f %s", f, units[i])
}

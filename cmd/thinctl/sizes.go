package main

import (
	"errors"
	"math"
	"strings"

	"github.com/thinctl/thinctl/units"
)

// parseSize reads a size flag in the one grammar (units.ParseSize) and
// returns the reason alone on refusal, for "invalid --size "0": zero; ...".
func parseSize(s string) (uint64, error) {
	n, err := units.ParseSize(s)
	var se *units.SizeError
	if errors.As(err, &se) {
		return 0, errors.New(se.Reason)
	}
	return n, err
}

// parsePercent reads a percentage flag (see units.ParsePercent); the
// error is only the reason, as the flag's error names the flag and value.
func parsePercent(s string) (float64, error) {
	v, err := units.ParsePercent(s)
	var pe *units.PercentError
	if errors.As(err, &pe) {
		return 0, errors.New(pe.Reason)
	}
	return v, err
}

// humanSize renders bytes with one decimal and a binary unit, like lvs.
func humanSize(b uint64) string { return units.FormatSize(b) }

// percent returns used/total as a percentage, 0 when total is 0.
func percent(used, total uint64) float64 {
	if total == 0 {
		return 0
	}
	return float64(used) * 100 / float64(total)
}

// bar draws a width-cell gauge of pct percent, e.g. [###.......].
func bar(pct float64, width int) string {
	filled := int(math.Round(pct / 100 * float64(width)))
	if filled < 0 {
		filled = 0
	}
	if filled > width {
		filled = width
	}
	if filled == 0 && pct > 0 {
		filled = 1 // any use at all is visible
	}
	return "[" + strings.Repeat("#", filled) + strings.Repeat(".", width-filled) + "]"
}

package main

import (
	"errors"
	"fmt"
	"math"
	"strconv"
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

// parsePercent reads a percentage such as "10%" or "10" (a bare number is
// a percentage too); it must lie strictly between 0 and 100.
func parsePercent(s string) (float64, error) {
	t := strings.TrimSuffix(strings.TrimSpace(s), "%")
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("not a percentage (e.g. 10%%)")
	}
	if v <= 0 || v >= 100 {
		return 0, fmt.Errorf("out of range; use a percentage above 0 and below 100")
	}
	return v, nil
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

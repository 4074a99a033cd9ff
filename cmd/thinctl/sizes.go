package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// unitShifts maps a size unit (lower case, without a trailing "B" or
// "iB") to its power-of-two shift. Every unit is binary: "10G", "10g",
// "10GB" and "10GiB" all mean 10 × 2^30 bytes.
var unitShifts = map[string]uint{
	"":  0,
	"k": 10,
	"m": 20,
	"g": 30,
	"t": 40,
	"p": 50,
}

// parseSize reads a positive size: plain bytes ("4096") or a whole number
// followed by a binary unit (K, M, G, T, P, optionally with B or iB, in
// any case). It refuses zero, negative numbers, fractions, unknown units
// and values beyond what a file offset can hold.
func parseSize(s string) (uint64, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, fmt.Errorf("empty")
	}
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	digits, suffix := t[:i], strings.ToLower(t[i:])
	if digits == "" {
		if strings.HasPrefix(t, "-") {
			return 0, fmt.Errorf("negative; sizes must be positive")
		}
		return 0, fmt.Errorf("not a size (use bytes or a whole number with K, M, G, T or P, e.g. 10G)")
	}
	if strings.HasPrefix(suffix, ".") {
		return 0, fmt.Errorf("fractions are not accepted; use a whole number of a smaller unit (e.g. 1536M)")
	}
	unit := suffix
	switch {
	case len(unit) > 2 && strings.HasSuffix(unit, "ib"):
		unit = unit[:len(unit)-2]
	case strings.HasSuffix(unit, "b"):
		unit = unit[:len(unit)-1]
	}
	shift, ok := unitShifts[unit]
	if !ok {
		return 0, fmt.Errorf("unknown unit %q (use K, M, G, T or P)", t[i:])
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || n > math.MaxInt64>>shift {
		return 0, fmt.Errorf("too large")
	}
	if n == 0 {
		return 0, fmt.Errorf("zero; sizes must be positive")
	}
	return n << shift, nil
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

// humanSize renders bytes with one decimal and a binary unit, like lvs:
// 512.0M, 10.0G; sizes under 1 KiB are printed in bytes ("512B").
func humanSize(b uint64) string {
	const units = "KMGTPE"
	if b < 1<<10 {
		return strconv.FormatUint(b, 10) + "B"
	}
	v := float64(b)
	u := -1
	for v >= 1024 && u < len(units)-1 {
		v /= 1024
		u++
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + string(units[u])
}

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

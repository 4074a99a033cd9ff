// Package units holds thinctl's one size grammar: the parser every
// package and the command line use for sizes given as text (a flag, a
// storage option), and the short form sizes are printed in.
//
// The grammar: optional surrounding white space, then a whole number of
// decimal digits, then an optional binary unit in any case — K, M, G, T or
// P, each optionally followed by B or iB ("10G", "10g", "10GB", "10GiB"
// are all 10 × 2^30 bytes) — or a lone B for bytes. There are no decimal
// (1000-based) units. Zero, negative numbers, fractions ("1.5G": write
// "1536M"), unknown units and sizes beyond 2^63-1 bytes (what a file
// offset can hold) are refused.
//
// Percentages (a minimum of free space) have a grammar of their own, read
// by ParsePercent: a decimal number from 0 up to, not including, 100,
// optionally followed by "%".
package units

import (
	"math"
	"strconv"
	"strings"

	"github.com/thinctl/thinctl/errdefs"
)

// shifts maps a unit (lower case, without a trailing "b" or "ib") to its
// power-of-two shift.
var shifts = map[string]uint{"": 0, "k": 10, "m": 20, "g": 30, "t": 40, "p": 50}

// SizeError is a size ParseSize refused. It matches
// errdefs.ErrInvalidArgument under errors.Is.
type SizeError struct {
	// Input is the text as given.
	Input string
	// Reason says what is wrong with it and, where it helps, what to write
	// instead ("fractions are not accepted; use a whole number of a
	// smaller unit (e.g. 1536M)").
	Reason string
}

// Error returns `invalid size "<input>": <reason>`.
func (e *SizeError) Error() string { return "invalid size " + strconv.Quote(e.Input) + ": " + e.Reason }

// Unwrap returns errdefs.ErrInvalidArgument.
func (e *SizeError) Unwrap() error { return errdefs.ErrInvalidArgument }

// ParseSize reads a positive size in bytes written in the package's
// grammar ("4096", "64K", "10G", "10GiB"). A refused size is a *SizeError.
func ParseSize(s string) (uint64, error) {
	bad := func(reason string) (uint64, error) { return 0, &SizeError{Input: s, Reason: reason} }
	t := strings.TrimSpace(s)
	if t == "" {
		return bad("empty")
	}
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	digits, suffix := t[:i], strings.ToLower(t[i:])
	if digits == "" {
		if strings.HasPrefix(t, "-") {
			return bad("negative; sizes must be positive")
		}
		return bad("not a size (use bytes or a whole number with K, M, G, T or P, e.g. 10G)")
	}
	if strings.HasPrefix(suffix, ".") || strings.HasPrefix(suffix, ",") {
		return bad("fractions are not accepted; use a whole number of a smaller unit (e.g. 1536M)")
	}
	unit := suffix
	switch {
	case len(unit) > 2 && strings.HasSuffix(unit, "ib"):
		unit = unit[:len(unit)-2]
	case strings.HasSuffix(unit, "b"):
		unit = unit[:len(unit)-1]
	}
	shift, ok := shifts[unit]
	if !ok {
		return bad("unknown unit " + strconv.Quote(t[i:]) + " (use K, M, G, T or P)")
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || n > math.MaxInt64>>shift {
		return bad("too large")
	}
	if n == 0 {
		return bad("zero; sizes must be positive")
	}
	return n << shift, nil
}

// FormatSize renders bytes with one decimal and a binary unit, like lvs:
// "512.0M", "10.0G"; sizes under 1 KiB are printed in bytes ("512B").
// ParseSize does not read this form back (it has a fraction); use
// strconv for an exact round trip.
func FormatSize(b uint64) string {
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

// PercentError is a percentage ParsePercent refused. It matches
// errdefs.ErrInvalidArgument under errors.Is.
type PercentError struct {
	// Input is the text as given.
	Input string
	// Reason says what is wrong with it and what to write instead.
	Reason string
}

// Error returns `invalid percentage "<input>": <reason>`.
func (e *PercentError) Error() string {
	return "invalid percentage " + strconv.Quote(e.Input) + ": " + e.Reason
}

// Unwrap returns errdefs.ErrInvalidArgument.
func (e *PercentError) Unwrap() error { return errdefs.ErrInvalidArgument }

// ParsePercent reads a percentage such as "10%", "2.5" (a bare number is a
// percentage too) or "0%", surrounded by optional white space. It must lie
// from 0 up to, not including, 100; what 0 means is the caller's to say
// (for a minimum of free space: no minimum). A refused percentage is a
// *PercentError.
func ParsePercent(s string) (float64, error) {
	v, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(s), "%"), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, &PercentError{Input: s, Reason: "not a percentage (e.g. 10%)"}
	}
	if v < 0 || v >= 100 {
		return 0, &PercentError{Input: s, Reason: "out of range; use a percentage from 0 to below 100"}
	}
	return v, nil
}

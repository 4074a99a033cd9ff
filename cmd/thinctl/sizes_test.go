package main

import (
	"strconv"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    uint64
		wantErr string
	}{
		{"plain bytes are bytes", "4096", 4096, ""},
		{"K is kibibytes", "64K", 64 << 10, ""},
		{"lower-case k is the same", "64k", 64 << 10, ""},
		{"M is mebibytes", "512M", 512 << 20, ""},
		{"G is gibibytes", "10G", 10 << 30, ""},
		{"g is gibibytes too", "10g", 10 << 30, ""},
		{"GiB spelled out is accepted", "10GiB", 10 << 30, ""},
		{"GB means binary gigabytes as well", "10GB", 10 << 30, ""},
		{"gib in lower case is accepted", "10gib", 10 << 30, ""},
		{"T is tebibytes", "1T", 1 << 40, ""},
		{"P is pebibytes", "2P", 2 << 50, ""},
		{"a trailing B alone means bytes", "512B", 512, ""},
		{"surrounding spaces are ignored", " 1G ", 1 << 30, ""},
		{"zero is refused", "0", 0, "zero"},
		{"zero with a unit is refused", "0G", 0, "zero"},
		{"negative numbers are refused", "-1G", 0, "negative"},
		{"an empty string is refused", "", 0, "empty"},
		{"garbage is refused", "lots", 0, "not a size"},
		{"an unknown unit is refused", "10X", 0, "unknown unit"},
		{"decimal units are not a thing", "10KK", 0, "unknown unit"},
		{"fractions are refused with advice", "1.5G", 0, "fractions"},
		{"a value beyond int64 is refused", "9223372036854775808", 0, "too large"},
		{"a unit pushing past int64 is refused", "8192P", 0, "too large"},
		{"digits beyond uint64 are refused", "99999999999999999999999", 0, "too large"},
		{"the largest int64 byte count is fine", "9223372036854775807", 1<<63 - 1, ""},
		{"iB without a unit is refused", "10iB", 0, "unknown unit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseSize(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseSize(%q) = %d, %v; want an error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParsePercent(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want float64
		ok   bool
	}{
		{"a percent sign is accepted", "10%", 10, true},
		{"a bare number is a percentage", "10", 10, true},
		{"fractions are fine", "2.5%", 2.5, true},
		{"zero is refused", "0%", 0, false},
		{"a hundred is refused", "100", 0, false},
		{"negative is refused", "-5%", 0, false},
		{"garbage is refused", "ten", 0, false},
		{"NaN is refused", "NaN", 0, false},
		{"infinity is refused", "Inf", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parsePercent(tt.in)
			if (err == nil) != tt.ok || (tt.ok && got != tt.want) {
				t.Fatalf("parsePercent(%q) = %v, %v; want %v ok=%v", tt.in, got, err, tt.want, tt.ok)
			}
		})
	}
}

func TestHumanSize(t *testing.T) {
	tests := []struct {
		name string
		in   uint64
		want string
	}{
		{"bytes stay bytes", 512, "512B"},
		{"kibibytes get one decimal", 1536, "1.5K"},
		{"mebibytes", 64 << 20, "64.0M"},
		{"gibibytes", 10 << 30, "10.0G"},
		{"tebibytes", 3 << 40, "3.0T"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := humanSize(tt.in); got != tt.want {
				t.Fatalf("humanSize(%d) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestBar(t *testing.T) {
	tests := []struct {
		name string
		pct  float64
		want string
	}{
		{"empty is all dots", 0, "[..........]"},
		{"any use shows one mark", 0.1, "[#.........]"},
		{"half is half", 50, "[#####.....]"},
		{"full is all marks", 100, "[##########]"},
		{"beyond full is clamped", 130, "[##########]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := bar(tt.pct, 10); got != tt.want {
				t.Fatalf("bar(%v) = %q, want %q", tt.pct, got, tt.want)
			}
		})
	}
}

// FuzzParseSize checks that every accepted size is positive, fits an
// int64, and that its byte count parses back to itself.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"1", "64K", "10GiB", "0", "-1", "1.5G", "8192P", "10kb", " 7 ", "1e3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseSize(s)
		if err != nil {
			return
		}
		if n == 0 || n > 1<<63-1 {
			t.Fatalf("parseSize(%q) = %d: outside 1..MaxInt64", s, n)
		}
		back, err := parseSize(strconv.FormatUint(n, 10))
		if err != nil || back != n {
			t.Fatalf("parseSize(%q) = %d, but its byte count parses to %d, %v", s, n, back, err)
		}
	})
}

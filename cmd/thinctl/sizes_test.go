package main

import (
	"testing"
)

func TestSizeFlagsUseTheOneGrammarAndNameOnlyTheReason(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    uint64
		wantErr string
	}{
		{"a unit is binary", "10G", 10 << 30, ""},
		{"zero says zero and nothing else", "0", 0, "zero; sizes must be positive"},
		{"a fraction gets the advice", "1.5G", 0, "fractions are not accepted; use a whole number of a smaller unit (e.g. 1536M)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseSize(tt.in)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("parseSize(%q) = %d, %v; want the bare reason %q", tt.in, got, err, tt.wantErr)
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
		{"zero is no minimum", "0%", 0, true},
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

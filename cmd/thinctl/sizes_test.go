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

// TestAPercentFlagsErrorIsTheReasonAlone checks what parsePercent adds to
// units.ParsePercent (whose grammar units' tests cover): a refusal is the
// reason alone, as the flag's error already names the flag and its value.
func TestAPercentFlagsErrorIsTheReasonAlone(t *testing.T) {
	if got, err := parsePercent("0%"); err != nil || got != 0 {
		t.Fatalf("parsePercent(0%%) = %v, %v; want 0 (no minimum)", got, err)
	}
	_, err := parsePercent("100%")
	if err == nil || err.Error() != "out of range; use a percentage from 0 to below 100" {
		t.Fatalf("parsePercent(100%%) error = %v, want the reason alone", err)
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

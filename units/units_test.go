package units

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/thinctl/thinctl/errdefs"
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
		{"MiB is mebibytes", "512MiB", 512 << 20, ""},
		{"T is tebibytes", "1T", 1 << 40, ""},
		{"TB is tebibytes", "2TB", 2 << 40, ""},
		{"P is pebibytes", "2P", 2 << 50, ""},
		{"a trailing B alone means bytes", "512B", 512, ""},
		{"surrounding spaces are ignored", " 1G ", 1 << 30, ""},
		{"zero is refused", "0", 0, "zero"},
		{"zero with a unit is refused", "0G", 0, "zero"},
		{"negative numbers are refused", "-1G", 0, "negative"},
		{"an empty string is refused", "", 0, "empty"},
		{"blanks alone are refused", "   ", 0, "empty"},
		{"garbage is refused", "lots", 0, "not a size"},
		{"an unknown unit is refused", "10X", 0, "unknown unit"},
		{"doubled units are refused", "10KK", 0, "unknown unit"},
		{"fractions are refused with advice", "1.5G", 0, "fractions"},
		{"fractions of bytes are refused too", "1.5", 0, "fractions"},
		{"a decimal comma is a fraction", "1,5G", 0, "fractions"},
		{"exponents are not numbers here", "1e3", 0, "unknown unit"},
		{"a value beyond int64 is refused", "9223372036854775808", 0, "too large"},
		{"a unit pushing past int64 is refused", "8192P", 0, "too large"},
		{"digits beyond uint64 are refused", "99999999999999999999999", 0, "too large"},
		{"the largest int64 byte count is fine", "9223372036854775807", 1<<63 - 1, ""},
		{"the largest P count is fine", "8191P", 8191 << 50, ""},
		{"iB without a unit is refused", "10iB", 0, "unknown unit"},
		{"a space inside is refused", "10 G", 0, "unknown unit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSize(tt.in)
			if tt.wantErr != "" {
				var se *SizeError
				if !errors.As(err, &se) || !strings.Contains(se.Reason, tt.wantErr) || se.Input != tt.in {
					t.Fatalf("ParseSize(%q) = %d, %v; want a SizeError whose reason has %q", tt.in, got, err, tt.wantErr)
				}
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("ParseSize(%q): %v does not match ErrInvalidArgument", tt.in, err)
				}
				if want := "invalid size " + strconv.Quote(tt.in) + ": "; !strings.HasPrefix(err.Error(), want) {
					t.Fatalf("error %q does not start with %q", err, want)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestFormatSize(t *testing.T) {
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
			if got := FormatSize(tt.in); got != tt.want {
				t.Fatalf("FormatSize(%d) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// FuzzParseSize checks that every accepted size is positive, fits an
// int64, that its byte count parses back to itself, and that every refusal
// is a SizeError naming the input.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"1", "64K", "10GiB", "0", "-1", "1.5G", "8192P", "10kb", " 7 ", "1e3", "1,5G"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			var se *SizeError
			if !errors.As(err, &se) || se.Input != s || se.Reason == "" {
				t.Fatalf("ParseSize(%q) refused with %v, not a SizeError naming the input", s, err)
			}
			return
		}
		if n == 0 || n > 1<<63-1 {
			t.Fatalf("ParseSize(%q) = %d: outside 1..MaxInt64", s, n)
		}
		back, err := ParseSize(strconv.FormatUint(n, 10))
		if err != nil || back != n {
			t.Fatalf("%d bytes (from %q) parse back as %d, %v", n, s, back, err)
		}
	})
}

func TestParsePercent(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want float64
		ok   bool
	}{
		{"a percent sign is accepted", "10%", 10, true},
		{"a bare number is a percentage", " 2.5 ", 2.5, true},
		{"zero is a value", "0%", 0, true},
		{"just under a hundred is accepted", "99.9", 99.9, true},
		{"a hundred is refused", "100%", 0, false},
		{"negative is refused", "-1", 0, false},
		{"a word is refused", "ten", 0, false},
		{"NaN is refused", "NaN", 0, false},
		{"infinity is refused", "+Inf%", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePercent(tt.in)
			if (err == nil) != tt.ok || got != tt.want {
				t.Fatalf("ParsePercent(%q) = %v, %v; want %v ok=%v", tt.in, got, err, tt.want, tt.ok)
			}
			var pe *PercentError
			if err != nil && (!errors.As(err, &pe) || !errors.Is(err, errdefs.ErrInvalidArgument) || pe.Input != tt.in) {
				t.Fatalf("ParsePercent(%q) error %#v is not a *PercentError of the input matching ErrInvalidArgument", tt.in, err)
			}
		})
	}
}

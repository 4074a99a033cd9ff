package dm

import (
	"errors"
	"strings"
	"testing"
)

func TestNameValidation(t *testing.T) {
	cases := []struct {
		name string
		in   string
		ok   bool
	}{
		{"a plain name is fine", "thin-pool", true},
		{"a 127-byte name is the longest allowed", strings.Repeat("a", 127), true},
		{"a 128-byte name would be truncated", strings.Repeat("a", 128), false},
		{"an empty name is refused", "", false},
		{"a slash is refused", "a/b", false},
		{"control is reserved", "control", false},
		{"dot is reserved", ".", false},
		{"dot-dot is reserved", "..", false},
		{"dots inside a name are fine", "a..b", true},
		{"a NUL byte is refused", "a\x00b", false},
		{"spaces and unicode pass through", "vol ümlaut", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateName(tc.in)
			if (err == nil) != tc.ok {
				t.Fatalf("ValidateName(%q) = %v, want ok=%v", tc.in, err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidName) {
				t.Fatalf("error %v does not wrap ErrInvalidName", err)
			}
		})
	}
}

func TestUUIDValidation(t *testing.T) {
	cases := []struct {
		name string
		in   string
		ok   bool
	}{
		{"no uuid is fine", "", true},
		{"a 128-byte uuid is the longest allowed", strings.Repeat("u", 128), true},
		{"a 129-byte uuid would be truncated", strings.Repeat("u", 129), false},
		{"a NUL byte is refused", "u\x00", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateUUID(tc.in)
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrInvalidName)) {
				t.Fatalf("ValidateUUID = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestALookupUsesExactlyOneKey(t *testing.T) {
	cases := []struct {
		name string
		r    ref
		ok   bool
	}{
		{"by name", ref{name: "a"}, true},
		{"by uuid", ref{uuid: "U"}, true},
		{"by device number", ref{dev: 1}, true},
		{"by nothing", ref{}, false},
		{"by name and uuid", ref{name: "a", uuid: "U"}, false},
		{"by name and device number", ref{name: "a", dev: 1}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.r.validate(); (err == nil) != tc.ok {
				t.Fatalf("validate = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestNodePathIsUnderDevMapper(t *testing.T) {
	if got := NodePath("pool"); got != "/dev/mapper/pool" {
		t.Fatalf("NodePath = %q", got)
	}
}

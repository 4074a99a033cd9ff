package thinpool

import (
	"strings"
	"testing"

	"github.com/pkg/errors"
)

func TestValidateID(t *testing.T) {
	cases := []struct {
		name string
		id   string
		ok   bool
	}{
		{"a plain word is valid", "layer1", true},
		{"dots, dashes and underscores inside are valid", "a.b-c_d", true},
		{"a leading underscore is valid", "_x", true},
		{"a 64-character hex digest is valid", strings.Repeat("ab", 32), true},
		{"128 characters are valid", strings.Repeat("a", 128), true},
		{"129 characters are too long", strings.Repeat("a", 129), false},
		{"the empty id is invalid", "", false},
		{"a leading dot is invalid", ".hidden", false},
		{"a leading dash is invalid", "-rf", false},
		{"a slash is invalid", "a/b", false},
		{"dot-dot is invalid", "..", false},
		{"a space is invalid", "a b", false},
		{"non-ASCII is invalid", "café", false},
		{"a NUL byte is invalid", "a\x00b", false},
		{"a colon is invalid", "a:b", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := ValidateID(c.id)
			if c.ok && err != nil {
				t.Fatalf("ValidateID(%q) = %v, want nil", c.id, err)
			}
			if !c.ok && !errors.Is(err, ErrInvalidID) {
				t.Fatalf("ValidateID(%q) = %v, want ErrInvalidID", c.id, err)
			}
		})
	}
}

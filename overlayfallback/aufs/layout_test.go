package aufs

import (
	"reflect"
	"strings"
	"testing"
)

func TestValidateID(t *testing.T) {
	tests := []struct {
		name string
		id   string
		ok   bool
	}{
		{"a hex id is accepted", "a5cad43027e71dcd8efaa9287a4c502a", true},
		{"an init layer id is accepted", "a5cad430-init", true},
		{"an empty id is refused", "", false},
		{"a dot is refused", ".", false},
		{"dot-dot is refused", "..", false},
		{"a whiteout-like id is refused", ".wh.x", false},
		{"a slash is refused", "a/b", false},
		{"a colon, the branch separator, is refused", "a:b", false},
		{"a comma, the option separator, is refused", "a,b", false},
		{"an equals sign, the permission separator, is refused", "a=rw", false},
		{"a newline, the layers file separator, is refused", "a\nb", false},
		{"surrounding space is refused", " a", false},
		{"the removing suffix is refused", "abc-removing", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := validateID(tt.id)
			if (err == nil) != tt.ok {
				t.Fatalf("validateID(%q) = %v, want ok=%v", tt.id, err, tt.ok)
			}
		})
	}
}

func TestParseLayers(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []string
		wantErr string
	}{
		{"an empty file is a base layer", "", nil, ""},
		{"one ancestor per line, nearest first", "b\na\n", []string{"b", "a"}, ""},
		{"a missing final newline is accepted", "b\na", []string{"b", "a"}, ""},
		{"blank lines and spaces are ignored", "\n b \n\n a\r\n", []string{"b", "a"}, ""},
		{"Docker's init layer naming parses", "x-init\nf1\n", []string{"x-init", "f1"}, ""},
		{"an id listed twice is corrupt", "a\nb\na\n", nil, "line 3"},
		{"an invalid id names its line", "a\nb:c\n", nil, "line 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseLayers([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseLayers(%q) error = %v, want one mentioning %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("parseLayers(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestFormatLayersWritesOneIDPerLine(t *testing.T) {
	if got := string(formatLayers([]string{"c", "b", "a"})); got != "c\nb\na\n" {
		t.Fatalf("formatLayers = %q", got)
	}
	if got := formatLayers(nil); len(got) != 0 {
		t.Fatalf("formatLayers(nil) = %q, want empty", got)
	}
}

// FuzzParseLayers checks that the parser never panics, returns only valid
// distinct ids, and that what it accepts survives format and parse again.
func FuzzParseLayers(f *testing.F) {
	for _, s := range []string{
		"", "\n", "a\n", "b\na\n", "x-init\nf1\nf2", " a \r\n\n b", "a\na\n",
		"a:b\n", ".wh.a\n", "abc-removing\n", strings.Repeat("f", 70000) + "\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ids, err := parseLayers(b)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, id := range ids {
			if verr := validateID(id); verr != nil {
				t.Fatalf("parseLayers accepted invalid id %q: %v", id, verr)
			}
			if seen[id] {
				t.Fatalf("parseLayers accepted duplicate id %q", id)
			}
			seen[id] = true
		}
		again, err := parseLayers(formatLayers(ids))
		if err != nil || !reflect.DeepEqual(again, ids) {
			t.Fatalf("round trip of %q gave %q, %v", ids, again, err)
		}
	})
}

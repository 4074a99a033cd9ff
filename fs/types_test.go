package fs

import (
	"testing"

	"github.com/pkg/errors"
)

func TestParseType(t *testing.T) {
	tests := []struct {
		name, in string
		want     Type
		wantErr  bool
	}{
		{"ext4 is accepted", "ext4", Ext4, false},
		{"xfs is accepted", "xfs", XFS, false},
		{"case and blanks are ignored", " XFS\n", XFS, false},
		{"ext3 is refused", "ext3", "", true},
		{"btrfs is refused", "btrfs", "", true},
		{"an empty name is refused", "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseType(tt.in)
			if tt.wantErr {
				if !errors.Is(err, ErrUnsupportedType) {
					t.Fatalf("ParseType(%q) error = %v, want ErrUnsupportedType", tt.in, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseType(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

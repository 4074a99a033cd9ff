package fs

import (
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pkg/errors"
)

func TestMkfsArgs(t *testing.T) {
	tests := []struct {
		name string
		t    Type
		opts MkfsOptions
		want []string
	}{
		{"ext4 turns lazy init and discard off", Ext4, MkfsOptions{},
			[]string{"mkfs.ext4", "-F", "-q", "-E", "nodiscard,lazy_itable_init=0,lazy_journal_init=0", "/dev/x"}},
		{"xfs forces and skips discard", XFS, MkfsOptions{},
			[]string{"mkfs.xfs", "-f", "-q", "-K", "/dev/x"}},
		{"a label and extra arguments come before the device", Ext4,
			MkfsOptions{Label: "base", ExtraArgs: []string{"-m", "0"}},
			[]string{"mkfs.ext4", "-F", "-q", "-E", "nodiscard,lazy_itable_init=0,lazy_journal_init=0", "-L", "base", "-m", "0", "/dev/x"}},
		{"an xfs label of 12 bytes fits", XFS, MkfsOptions{Label: "abcdefghijkl"},
			[]string{"mkfs.xfs", "-f", "-q", "-K", "-L", "abcdefghijkl", "/dev/x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := mkfsArgs("/dev/x", tt.t, tt.opts)
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("mkfsArgs = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestMkfsRefusesBadInput(t *testing.T) {
	tests := []struct {
		name string
		dev  string
		t    Type
		opts MkfsOptions
		want string
	}{
		{"an unknown type is ErrUnsupportedType", "/dev/x", "btrfs", MkfsOptions{}, "unsupported filesystem type"},
		{"an empty device is refused", "", Ext4, MkfsOptions{}, "no device"},
		{"an ext4 label over 16 bytes is refused", "/dev/x", Ext4, MkfsOptions{Label: strings.Repeat("a", 17)}, "at most 16"},
		{"an xfs label over 12 bytes is refused", "/dev/x", XFS, MkfsOptions{Label: strings.Repeat("a", 13)}, "at most 12"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Mkfs(context.Background(), tt.dev, tt.t, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Mkfs error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestMkfsNamesThePackageOfAMissingTool(t *testing.T) {
	saved := sbinDirs
	sbinDirs = nil
	defer func() { sbinDirs = saved }()
	t.Setenv("PATH", t.TempDir())
	for typ, pkg := range map[Type]string{Ext4: "e2fsprogs", XFS: "xfsprogs"} {
		err := Mkfs(context.Background(), "/dev/null", typ, MkfsOptions{})
		if !errors.Is(err, ErrToolMissing) || !strings.Contains(err.Error(), "install "+pkg) {
			t.Errorf("Mkfs(%s) without tools: error = %v, want ErrToolMissing naming %s", typ, err, pkg)
		}
	}
}

func TestMkfsReturnsTheToolsMessageOnOneLine(t *testing.T) {
	requireTools(t, "mkfs.ext4")
	missing := filepath.Join(t.TempDir(), "no-such-image")
	err := Mkfs(context.Background(), missing, Ext4, MkfsOptions{})
	if err == nil {
		t.Fatal("Mkfs on a missing file succeeded")
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") || !strings.Contains(msg, "does not exist") || strings.Contains(msg, "mke2fs 1.") {
		t.Fatalf("Mkfs error = %q, want mke2fs's complaint on one line without its banner", msg)
	}
}

func TestCondense(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"blank output stays blank", "\n \n", ""},
		{"the e2fsprogs banner is dropped", "mke2fs 1.47.0 (5-Feb-2023)\nThe file /x does not exist.\n", "The file /x does not exist."},
		{"lines are joined", "first\n\n  second  \n", "first; second"},
		{"long output is cut", strings.Repeat("x", 1000), strings.Repeat("x", maxMessage) + "..."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := condense(tt.in); got != tt.want {
				t.Fatalf("condense(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

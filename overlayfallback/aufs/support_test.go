package aufs

import (
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/thinctl/thinctl/driver"
)

// hostFilesystems is /proc/filesystems as read on a build machine.
const hostFilesystems = "nodev\tsysfs\nnodev\ttmpfs\nnodev\tproc\n\text4\nnodev\toverlay\n\txfs\n\tbtrfs\n"

func TestParseFilesystems(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"nodev and block filesystems are both listed", "nodev\taufs\n\text4\n", []string{"aufs", "ext4"}},
		{"an empty file lists nothing", "", nil},
		{"malformed lines are skipped", "garbage line here\nnodev\n\txfs\n", []string{"xfs"}},
		{"a missing final newline is fine", "nodev\taufs", []string{"aufs"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseFilesystems([]byte(tt.in)); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("parseFilesystems = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestHasFilesystemMatchesWholeNamesOnly(t *testing.T) {
	if hasFilesystem([]byte("nodev\taufs2\nnodev\tnotaufs\n"), "aufs") {
		t.Fatal("aufs must not match aufs2 or notaufs")
	}
	if !hasFilesystem([]byte(hostFilesystems+"nodev\taufs\n"), "aufs") {
		t.Fatal("aufs listed but not found")
	}
}

func TestCheckSupport(t *testing.T) {
	tests := []struct {
		name       string
		before     string // /proc/filesystems before the module load attempt
		after      string // and after it
		wantErr    bool
		wantLoaded bool // whether a module load must have been attempted
	}{
		{"aufs already listed needs no module load", hostFilesystems + "nodev\taufs\n", "", false, false},
		{"aufs appearing after the module load is supported", hostFilesystems, hostFilesystems + "nodev\taufs\n", false, true},
		{"a kernel without aufs is not supported", hostFilesystems, hostFilesystems, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loaded := false
			p := supportProbe{
				readFilesystems: func() ([]byte, error) {
					if loaded {
						return []byte(tt.after), nil
					}
					return []byte(tt.before), nil
				},
				loadModule: func() { loaded = true },
			}
			err := checkSupport(p)
			if loaded != tt.wantLoaded {
				t.Fatalf("module load attempted = %v, want %v", loaded, tt.wantLoaded)
			}
			if !tt.wantErr {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, driver.ErrNotSupported) {
				t.Fatalf("error %v does not wrap driver.ErrNotSupported", err)
			}
			if !strings.Contains(err.Error(), "kernel has no aufs (not in /proc/filesystems)") {
				t.Fatalf("error %q does not give the reason", err)
			}
		})
	}
}

func TestNewOnThisHostEitherWorksOrSaysWhyNot(t *testing.T) {
	d, err := New(t.TempDir(), driver.Options{})
	if err != nil {
		if !errors.Is(err, driver.ErrNotSupported) && !errors.Is(err, driver.ErrPrerequisitesMissing) {
			t.Fatalf("New failed with an unclassified error: %v", err)
		}
		t.Skipf("aufs not available: %v", err)
	}
	if d.String() != "aufs" {
		t.Fatalf("String() = %q", d.String())
	}
}

// FuzzParseFilesystems checks the /proc/filesystems parser never panics
// and only returns names without white space.
func FuzzParseFilesystems(f *testing.F) {
	for _, s := range []string{hostFilesystems, "nodev\taufs\n", "", "\n\n", "nodev", "a b c\n", "\tx\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, n := range parseFilesystems(b) {
			if n == "" || strings.ContainsAny(n, " \t\n") || n == "nodev" {
				t.Fatalf("parseFilesystems(%q) returned bad name %q", b, n)
			}
			if !hasFilesystem(b, n) {
				t.Fatalf("hasFilesystem disagrees with parseFilesystems on %q", n)
			}
		}
	})
}

func TestNewRefusesDriverOptions(t *testing.T) {
	_, err := New(t.TempDir(), driver.Options{StorageOpt: map[string]string{"size": "10G"}})
	if err == nil || !strings.Contains(err.Error(), `"size"`) {
		t.Fatalf("New with a size option = %v, want an error naming it", err)
	}
}

func TestRegisteredForSelection(t *testing.T) {
	found := false
	for _, n := range driver.Backends() {
		found = found || n == "aufs"
	}
	if !found {
		t.Fatalf("aufs is not among the registered backends %v", driver.Backends())
	}
}

func TestExistingSeesTheHomeUnderTheRoot(t *testing.T) {
	d, _ := newTestDriver(t)
	root := filepath.Dir(d.Home())
	if desc, ok := (backend{}).Existing(filepath.Join(root, "missing")); ok {
		t.Fatalf("a missing root holds an aufs home: %q", desc)
	}
	if filepath.Base(d.Home()) != Name {
		t.Skip("the test driver's home is not named aufs")
	}
	if desc, ok := (backend{}).Existing(root); !ok || desc != d.Home()+" already exists" {
		t.Fatalf("Existing(%s) = %q, %v", root, desc, ok)
	}
}

package loopback

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
)

func TestLoopNames(t *testing.T) {
	tests := []struct {
		name string
		in   string
		n    int
		ok   bool
	}{
		{"loop0 is device 0", "loop0", 0, true},
		{"loop17 is device 17", "loop17", 17, true},
		{"loop1048575 is device 1048575", "loop1048575", 1048575, true},
		{"loop-control is no device", "loop-control", 0, false},
		{"a partition is no device", "loop0p1", 0, false},
		{"a bare prefix is no device", "loop", 0, false},
		{"a leading zero is no device name", "loop01", 0, false},
		{"a sign is no device name", "loop+1", 0, false},
		{"another disk is no loop device", "vda", 0, false},
		{"ten digits are refused rather than overflowing", "loop9999999999", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, ok := parseLoopName(tt.in)
			if n != tt.n || ok != tt.ok {
				t.Errorf("parseLoopName(%q) = %d, %v; want %d, %v", tt.in, n, ok, tt.n, tt.ok)
			}
		})
	}
}

func TestDevNumbers(t *testing.T) {
	tests := []struct {
		name         string
		in           string
		major, minor uint32
		ok           bool
	}{
		{"a sysfs dev file with its newline", "7:3\n", 7, 3, true},
		{"no newline", "7:0", 7, 0, true},
		{"a partitioned minor", "259:65536\n", 259, 65536, true},
		{"no colon", "7\n", 0, 0, false},
		{"an empty file", "", 0, 0, false},
		{"hex is refused", "0x7:1", 0, 0, false},
		{"a negative minor is refused", "7:-1", 0, 0, false},
		{"a third field is refused", "7:1:2", 0, 0, false},
		{"a major beyond 32 bits is refused", "4294967296:0", 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ma, mi, err := parseDevNumber(tt.in)
			if (err == nil) != tt.ok || ma != tt.major || mi != tt.minor {
				t.Errorf("parseDevNumber(%q) = %d, %d, %v; want %d, %d, ok=%v", tt.in, ma, mi, err, tt.major, tt.minor, tt.ok)
			}
		})
	}
}

// fakeSys points sysBlockDir and devDir at fresh directories holding the
// named entries, restoring them when t ends.
func fakeSys(t *testing.T, sys, dev []string) {
	t.Helper()
	oldSys, oldDev := sysBlockDir, devDir
	t.Cleanup(func() { sysBlockDir, devDir = oldSys, oldDev })
	mk := func(names []string) string {
		if names == nil {
			return filepath.Join(t.TempDir(), "absent")
		}
		d := t.TempDir()
		for _, n := range names {
			if err := os.Mkdir(filepath.Join(d, n), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		return d
	}
	sysBlockDir, devDir = mk(sys), mk(dev)
}

func TestLoopIndexesWalkEveryDeviceAcrossGaps(t *testing.T) {
	fakeSys(t, []string{"loop0", "loop10", "loop2", "vda", "loop0p1", "zram0"}, []string{"loop5"})
	got, err := loopIndexes()
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{0, 2, 10}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v (from /sys/block, sorted, gaps kept)", got, want)
	}
}

func TestLoopIndexesFallBackToDevWithoutSysfs(t *testing.T) {
	fakeSys(t, nil, []string{"loop-control", "loop3", "loop1", "null"})
	got, err := loopIndexes()
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{1, 3}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestLoopIndexesFailWithNeitherDirectory(t *testing.T) {
	fakeSys(t, nil, nil)
	if got, err := loopIndexes(); err == nil {
		t.Errorf("got %v and no error", got)
	}
}

func TestSysDevNumberReadsSysfsAndFallsBackToMajor7(t *testing.T) {
	fakeSys(t, []string{"loop4", "loop6"}, []string{})
	if err := os.WriteFile(filepath.Join(sysBlockDir, "loop4", "dev"), []byte("7:64\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if ma, mi := sysDevNumber(4); ma != 7 || mi != 64 {
		t.Errorf("loop4 with a dev file: got %d:%d, want 7:64", ma, mi)
	}
	if ma, mi := sysDevNumber(6); ma != 7 || mi != 6 {
		t.Errorf("loop6 without a dev file: got %d:%d, want 7:6", ma, mi)
	}
}

func FuzzParseLoopName(f *testing.F) {
	for _, s := range []string{"loop0", "loop17", "loop-control", "loop01", "loop", "vda", "loop99999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, ok := parseLoopName(s)
		if !ok {
			return
		}
		if n < 0 || "loop"+strconv.Itoa(n) != s {
			t.Fatalf("parseLoopName(%q) = %d, which does not print back", s, n)
		}
	})
}

func FuzzParseDevNumber(f *testing.F) {
	for _, s := range []string{"7:0\n", "259:65536", "7", ":", "7:", ":1", "1:2:3", "-1:0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ma, mi, err := parseDevNumber(s)
		if err != nil {
			return
		}
		ma2, mi2, err := parseDevNumber(fmt.Sprintf("%d:%d\n", ma, mi))
		if err != nil || ma2 != ma || mi2 != mi {
			t.Fatalf("%q parsed as %d:%d but its canonical form did not round-trip (%d:%d, %v)", s, ma, mi, ma2, mi2, err)
		}
	})
}

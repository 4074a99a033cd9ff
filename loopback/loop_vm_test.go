//go:build vm

package loopback

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/thinctl/thinctl/internal/testenv"
)

// Real-kernel tests for the VM rig (Debian 6.1) and make test-native. The
// host tests of this package run there too; these add the load and the
// oracle checks. losetup (util-linux) is used only as an oracle.

// losetupRow is one device as `losetup -l -n --raw -O NAME,BACK-FILE,RO,AUTOCLEAR,DIO` prints it.
type losetupRow struct {
	backFile           string
	ro, autoclear, dio bool
}

// losetupList runs the oracle and returns its rows by device path.
func losetupList(t *testing.T) map[string]losetupRow {
	t.Helper()
	bin := testenv.RequireTool(t, "losetup")
	out, err := exec.Command(bin, "-l", "-n", "--raw", "-O", "NAME,BACK-FILE,RO,AUTOCLEAR,DIO").CombinedOutput()
	if err != nil {
		t.Fatalf("losetup -l: %v\n%s", err, out)
	}
	rows := map[string]losetupRow{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 5 {
			t.Fatalf("losetup printed %q, want 5 fields", line)
		}
		rows[f[0]] = losetupRow{backFile: strings.ReplaceAll(f[1], `\x20`, " "), ro: f[2] == "1", autoclear: f[3] == "1", dio: f[4] == "1"}
	}
	return rows
}

func TestVMSixtyFourParallelAttachesLeakNothing(t *testing.T) {
	requireLoop(t)
	eachPath(t, func(t *testing.T) {
		before, beforeSys := losetupList(t), bound(t)
		c0, l0 := boundWithConfigure.Load(), boundWithLegacy.Load()
		infos := parallelAttach(t, 64)
		after, afterSys := losetupList(t), bound(t)
		for dev, row := range after {
			if _, ok := before[dev]; !ok {
				leaked(t, "losetup", dev, row.backFile)
			}
		}
		for dev, file := range afterSys {
			if _, ok := beforeSys[dev]; !ok {
				leaked(t, "sysfs", dev, file)
			}
		}
		c, l := boundWithConfigure.Load()-c0, boundWithLegacy.Load()-l0
		t.Logf("64 attaches on %d distinct devices: %d LOOP_CONFIGURE and %d LOOP_SET_FD binds", len(infos), c, l)
		if legacy := strings.HasSuffix(t.Name(), "legacy"); (legacy && (c != 0 || l < 64)) || (!legacy && (l != 0 || c < 64)) {
			t.Errorf("the wrong bind path ran: %d configure, %d legacy", c, l)
		}
	})
}

// leaked reports a device bound during the test and still bound after it.
// In the guest nothing else runs, so any such device is ours; on a shared
// host only those bound to this test's files are.
func leaked(t *testing.T, oracle, dev, file string) {
	t.Helper()
	if os.Getenv("THINCTL_VM") == "1" || strings.Contains(file, "/"+strings.SplitN(t.Name(), "/", 2)[0]) {
		t.Errorf("%s: %s is still bound to %s", oracle, dev, file)
		return
	}
	t.Logf("%s: %s was bound to %s meanwhile, by another process", oracle, dev, file)
}

func TestVMDebianKernelHasLoopConfigure(t *testing.T) {
	requireLoop(t)
	attach(t, backingFile(t, "probe.img", 1<<20), Options{})
	if configureState.Load() != configureSupported {
		t.Errorf("the probe did not find LOOP_CONFIGURE on this kernel (state %d)", configureState.Load())
	}
}

func TestVMLosetupAgreesWithInfo(t *testing.T) {
	requireLoop(t)
	tests := []struct {
		name string
		opts Options
		long bool
	}{
		{"a plain attach", Options{}, false},
		{"a read-only attach", Options{ReadOnly: true}, false},
		{"an autoclear attach held open", Options{Autoclear: true}, false},
		{"a direct-I/O attach", Options{DirectIO: true}, false},
		{"all options with a path longer than lo_file_name", Options{ReadOnly: true, Autoclear: true, DirectIO: true}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eachPath(t, func(t *testing.T) {
				name := "oracle.img"
				if tt.long {
					name = strings.Repeat("n", 70) + ".img"
				}
				p := backingFile(t, name, 4<<20)
				d, err := AttachOpen(context.Background(), p, tt.opts)
				if err != nil {
					t.Fatal(err)
				}
				defer func() {
					d.Close()
					if !tt.opts.Autoclear {
						Detach(context.Background(), d.Path)
					}
				}()
				row, ok := losetupList(t)[d.Path]
				if !ok {
					t.Fatalf("losetup does not list %s", d.Path)
				}
				// losetup reads the full path from sysfs; Info has the
				// kernel's lo_file_name, at most 63 bytes of it.
				if row.backFile != p || d.BackingFile != truncateName(p) {
					t.Errorf("back-file %q, Info %q, file %q", row.backFile, d.BackingFile, p)
				}
				if row.ro != d.ReadOnly || row.autoclear != d.Autoclear || row.dio != d.DirectIO {
					t.Errorf("losetup ro=%v autoclear=%v dio=%v; Info %+v", row.ro, row.autoclear, row.dio, d.Info)
				}
				if d.ReadOnly != tt.opts.ReadOnly || d.Autoclear != tt.opts.Autoclear || d.DirectIO != tt.opts.DirectIO {
					t.Errorf("Info %+v does not carry the options %+v", d.Info, tt.opts)
				}
				if got, err := GetInfo(d.Path); err != nil || got != d.Info {
					t.Errorf("GetInfo %+v, %v; AttachOpen %+v", got, err, d.Info)
				}
			})
		})
	}
}

func TestVMCapacityChangeReachesSysfs(t *testing.T) {
	requireLoop(t)
	eachPath(t, func(t *testing.T) {
		p := backingFile(t, "grow.img", 8<<20)
		info := attach(t, p, Options{})
		sectors := func() int {
			n, err := strconv.Atoi(sysAttr(t, info.Number, "size"))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		if got := sectors(); got != 8<<20/512 {
			t.Fatalf("size %d sectors before growing, want %d", got, 8<<20/512)
		}
		if err := os.Truncate(p, 64<<20); err != nil {
			t.Fatal(err)
		}
		if err := SetCapacity(info.Path); err != nil {
			t.Fatal(err)
		}
		if got := sectors(); got != 64<<20/512 {
			t.Errorf("size %d sectors after SetCapacity, want %d", got, 64<<20/512)
		}
		if got := deviceSize(t, info.Path); got != 64<<20 {
			t.Errorf("BLKGETSIZE64 %d after SetCapacity, want %d", got, 64<<20)
		}
	})
}

//go:build vm

package dm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/thinctl/thinctl/internal/testenv"
	"github.com/thinctl/thinctl/loopback"
	"golang.org/x/sys/unix"
)

// vmClient returns the process-wide client, skipping without device-mapper.
func vmClient(t *testing.T) *Client {
	t.Helper()
	testenv.RequireDeviceMapper(t)
	c, err := Default()
	if err != nil {
		t.Fatalf("Default: %v", err)
	}
	return c
}

var nameSeq atomic.Int64

// devName returns a fresh device name for this test.
func devName(t *testing.T) string {
	return fmt.Sprintf("dmtest-%d-%d", os.Getpid(), nameSeq.Add(1))
}

// removeOnCleanup removes name when the test ends (also after a failure);
// a device that is already gone is fine.
func removeOnCleanup(t *testing.T, c *Client, name string) {
	t.Cleanup(func() {
		err := c.Remove(context.Background(), name, RemoveOptions{Retries: 8})
		if err != nil && !errors.Is(err, ErrNotFound) {
			t.Errorf("cleanup: %v", err)
		}
	})
}

// activate creates name with targets live and removes it on cleanup.
func activate(t *testing.T, c *Client, name string, targets []Target, opts LoadOptions) Info {
	t.Helper()
	if _, err := c.Create(name, CreateOptions{UUID: "DMTEST-" + name}); err != nil {
		t.Fatalf("Create %s: %v", name, err)
	}
	removeOnCleanup(t, c, name)
	if err := c.LoadTable(name, targets, opts); err != nil {
		t.Fatalf("LoadTable %s: %v", name, err)
	}
	if err := c.Resume(context.Background(), name); err != nil {
		t.Fatalf("Resume %s: %v", name, err)
	}
	info, err := c.Info(name)
	if err != nil {
		t.Fatalf("Info %s: %v", name, err)
	}
	return info
}

// dmsetup runs the oracle and returns its trimmed output.
func dmsetup(t *testing.T, args ...string) string {
	t.Helper()
	bin := testenv.RequireTool(t, "dmsetup")
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("dmsetup %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimRight(string(out), "\n")
}

// dmsetupTable runs dmsetup table/status; it prints a space after the
// target type even when the parameters are empty, which we drop.
func dmsetupTable(t *testing.T, args ...string) string {
	t.Helper()
	lines := strings.Split(dmsetup(t, args...), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	return strings.Join(lines, "\n")
}

// formatTable renders targets the way dmsetup table/status prints them.
func formatTable(ts []Target) string {
	var b strings.Builder
	for i, t := range ts {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(strings.TrimRight(fmt.Sprintf("%d %d %s %s", t.Start, t.Length, t.Type, t.Params), " "))
	}
	return b.String()
}

// wantTable checks Table and `dmsetup table` against want.
func wantTable(t *testing.T, c *Client, name string, want []Target) {
	t.Helper()
	got, err := c.Table(name, TableOptions{})
	if err != nil {
		t.Fatalf("Table %s: %v", name, err)
	}
	if formatTable(got) != formatTable(want) {
		t.Errorf("Table %s =\n%s\nwant\n%s", name, formatTable(got), formatTable(want))
	}
	if oracle := dmsetupTable(t, "table", name); oracle != formatTable(want) {
		t.Errorf("dmsetup table %s =\n%s\nwant\n%s", name, oracle, formatTable(want))
	}
}

// wantInfoMatchesDmsetup compares Info with `dmsetup info -c` and the
// state lines of `dmsetup info`.
func wantInfoMatchesDmsetup(t *testing.T, c *Client, name string) Info {
	t.Helper()
	// udev's workers open a device for a moment after a change (a resume):
	// the open counts of two samples taken apart must not see them.
	testenv.SettleUdev(t)
	info, err := c.Info(name)
	if err != nil {
		t.Fatalf("Info %s: %v", name, err)
	}
	cols := dmsetup(t, "info", "-c", "--noheadings", "--separator", "|", "-o", "name,uuid,major,minor,open,segments,events", name)
	want := fmt.Sprintf("%s|%s|%d|%d|%d|%d|%d", info.Name, info.UUID, unix.Major(info.Dev), unix.Minor(info.Dev), info.OpenCount, info.TargetCount, info.EventNr)
	if cols != want {
		t.Errorf("dmsetup info -c %s = %q, Info gives %q", name, cols, want)
	}
	long := dmsetup(t, "info", name)
	state := lineOf(long, "State:")
	if got := strings.Contains(state, "SUSPENDED"); got != info.Suspended {
		t.Errorf("dmsetup says %q, Info.Suspended = %v", state, info.Suspended)
	}
	if got := strings.Contains(state, "READ-ONLY"); got != info.ReadOnly {
		t.Errorf("dmsetup says %q, Info.ReadOnly = %v", state, info.ReadOnly)
	}
	tables := lineOf(long, "Tables present:")
	if got := strings.Contains(tables, "LIVE"); got != info.LiveTable {
		t.Errorf("dmsetup says %q, Info.LiveTable = %v", tables, info.LiveTable)
	}
	if got := strings.Contains(tables, "INACTIVE"); got != info.InactiveTable {
		t.Errorf("dmsetup says %q, Info.InactiveTable = %v", tables, info.InactiveTable)
	}
	return info
}

func lineOf(text, prefix string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			return strings.TrimSpace(strings.TrimPrefix(l, prefix))
		}
	}
	return ""
}

// loopDevice attaches a sparse file of size bytes and detaches it on cleanup.
func loopDevice(t *testing.T, size int64) loopback.Info {
	t.Helper()
	f := testenv.SparseFile(t, "backing", size)
	info, err := loopback.Attach(context.Background(), f, loopback.Options{})
	if err != nil {
		t.Fatalf("attach %s: %v", f, err)
	}
	t.Cleanup(func() {
		if err := loopback.Detach(context.Background(), info.Path); err != nil {
			t.Errorf("detach %s: %v", info.Path, err)
		}
	})
	return info
}

func majMin(dev uint64) string { return devString(dev) }

// wantNode checks that /dev/mapper/<name> resolves to block device dev.
func wantNode(t *testing.T, name string, dev uint64) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(NodePath(name), &st); err != nil {
		t.Fatalf("node %s: %v", NodePath(name), err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK || st.Rdev != dev {
		t.Fatalf("node %s is mode %o dev %s, want block device %s", NodePath(name), st.Mode, majMin(st.Rdev), majMin(dev))
	}
}

// wantNoNode checks that /dev/mapper/<name> does not exist.
func wantNoNode(t *testing.T, name string) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(NodePath(name), &st); err != unix.ENOENT {
		t.Fatalf("node %s: lstat gives %v, want ENOENT", NodePath(name), err)
	}
}

// eventually polls cond for up to d.
func eventually(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cond()
}

func itoa64(v uint64) string { return strconv.FormatUint(v, 10) }

//go:build vm

package dm

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestTheKernelReportsInterfaceVersionFourAndTheTargetsDmsetupLists(t *testing.T) {
	c := vmClient(t)
	v, err := c.Version()
	if err != nil {
		t.Fatal(err)
	}
	if v.Major != 4 || v.Minor < minorDeferredRemove {
		t.Fatalf("Version = %s, want 4.%d or later", v, minorDeferredRemove)
	}
	t.Logf("kernel device-mapper ioctl interface %s", v)
	versions, err := c.ListTargetVersions()
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, tv := range versions {
		lines = append(lines, tv.Name+" v"+itoa(tv.Major)+"."+itoa(tv.Minor)+"."+itoa(tv.Patch))
	}
	oracle := strings.Fields(dmsetup(t, "targets"))
	if strings.Join(strings.Fields(strings.Join(lines, " ")), " ") != strings.Join(oracle, " ") {
		t.Errorf("ListTargetVersions = %v\ndmsetup targets = %v", lines, oracle)
	}
	for _, want := range []string{"thin-pool", "thin", "linear", "zero", "error"} {
		if !strings.Contains(" "+strings.Join(lines, " ")+" ", " "+want+" v") {
			t.Errorf("target %s missing from %v", want, lines)
		}
	}
}

func TestAZeroDeviceGoesThroughCreateLoadResumeSuspendAndRemove(t *testing.T) {
	c := vmClient(t)
	name := devName(t)
	uuid := "DMTEST-uuid-" + name
	created, err := c.Create(name, CreateOptions{UUID: uuid})
	if err != nil {
		t.Fatal(err)
	}
	removeOnCleanup(t, c, name)
	if created.Name != name || created.UUID != uuid || created.Dev == 0 || created.LiveTable {
		t.Fatalf("Create returned %+v", created)
	}
	if !c.UdevRunning() {
		wantNode(t, name, created.Dev)
	}
	table := []Target{{Start: 0, Length: 4096, Type: "zero"}}
	if err := c.LoadTable(name, table, LoadOptions{}); err != nil {
		t.Fatal(err)
	}
	info := wantInfoMatchesDmsetup(t, c, name)
	if !info.InactiveTable || info.LiveTable {
		t.Fatalf("after LoadTable Info = %+v, want only an inactive table", info)
	}
	inactive, err := c.Table(name, TableOptions{Inactive: true})
	if err != nil || formatTable(inactive) != formatTable(table) {
		t.Fatalf("inactive Table = %v, %v; want %v", inactive, err, table)
	}
	if err := c.Resume(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	wantNode(t, name, created.Dev)
	info = wantInfoMatchesDmsetup(t, c, name)
	if !info.LiveTable || info.InactiveTable || info.Suspended || info.TargetCount != 1 {
		t.Fatalf("after Resume Info = %+v", info)
	}
	wantTable(t, c, name, table)
	st, err := c.Status(name, StatusOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if oracle := dmsetupTable(t, "status", name); formatTable(st) != oracle {
		t.Errorf("Status = %q, dmsetup status = %q", formatTable(st), oracle)
	}
	f, err := os.Open(NodePath(name))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, err := f.ReadAt(buf, 4096)
	f.Close()
	if err != nil || n != len(buf) || !bytes.Equal(buf, make([]byte, len(buf))) {
		t.Fatalf("reading the zero device: n=%d err=%v", n, err)
	}

	if err := c.Suspend(name, SuspendOptions{NoFlush: true, SkipLockfs: true}); err != nil {
		t.Fatal(err)
	}
	if info = wantInfoMatchesDmsetup(t, c, name); !info.Suspended {
		t.Fatalf("after Suspend Info = %+v", info)
	}
	if err := c.Resume(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	if info = wantInfoMatchesDmsetup(t, c, name); info.Suspended {
		t.Fatalf("after second Resume Info = %+v", info)
	}
	byUUID, err := c.InfoByUUID(uuid)
	if err != nil || byUUID.Name != name {
		t.Fatalf("InfoByUUID = %+v, %v", byUUID, err)
	}
	byDev, err := c.InfoByDev(created.Dev)
	if err != nil || byDev.Name != name {
		t.Fatalf("InfoByDev = %+v, %v", byDev, err)
	}

	if err := c.Remove(context.Background(), name, RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	wantNoNode(t, name)
	if _, err := c.Info(name); !errors.Is(err, ErrNotFound) || !errors.Is(err, unix.ENXIO) {
		t.Fatalf("Info after Remove = %v, want ErrNotFound (ENXIO)", err)
	}
}

func TestCreatingADuplicateNameFailsWithErrExists(t *testing.T) {
	c := vmClient(t)
	name := devName(t)
	if _, err := c.Create(name, CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	removeOnCleanup(t, c, name)
	_, err := c.Create(name, CreateOptions{})
	if !errors.Is(err, ErrExists) || !errors.Is(err, unix.EBUSY) {
		t.Fatalf("second Create = %v, want ErrExists (the kernel says EBUSY)", err)
	}
	if !strings.Contains(err.Error(), "create "+name) {
		t.Errorf("error %q does not name the operation and device", err)
	}
}

func TestOverlongNamesAreRejectedBeforeReachingTheKernel(t *testing.T) {
	c := vmClient(t)
	long := strings.Repeat("n", 128)
	if _, err := c.Create(long, CreateOptions{}); !errors.Is(err, ErrInvalidName) {
		t.Fatalf("Create(128-byte name) = %v, want ErrInvalidName", err)
	}
	if _, err := c.Create(devName(t), CreateOptions{UUID: strings.Repeat("u", 129)}); !errors.Is(err, ErrInvalidName) {
		t.Fatalf("Create(129-byte uuid) = %v, want ErrInvalidName", err)
	}
	devs, err := c.ListDevices()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range devs {
		if strings.HasPrefix(d.Name, "nnnnnnnn") {
			t.Fatalf("a truncated device %q was created", d.Name)
		}
	}
}

func TestTheErrorTargetFailsReadsAndAReadOnlyTableRefusesWriters(t *testing.T) {
	c := vmClient(t)
	errName := devName(t)
	activate(t, c, errName, []Target{{Start: 0, Length: 2048, Type: "error"}}, LoadOptions{})
	wantTable(t, c, errName, []Target{{Start: 0, Length: 2048, Type: "error"}})
	f, err := os.OpenFile(NodePath(errName), os.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.ReadAt(make([]byte, 512), 0)
	f.Close()
	if !errors.Is(err, unix.EIO) {
		t.Fatalf("reading the error target gave %v, want EIO", err)
	}

	roName := devName(t)
	activate(t, c, roName, []Target{{Start: 0, Length: 2048, Type: "zero"}}, LoadOptions{ReadOnly: true})
	if info := wantInfoMatchesDmsetup(t, c, roName); !info.ReadOnly {
		t.Fatalf("Info = %+v, want ReadOnly", info)
	}
	w, err := os.OpenFile(NodePath(roName), os.O_WRONLY, 0)
	if err == nil {
		_, err = w.WriteAt(make([]byte, 4096), 0)
		w.Close()
	}
	if err == nil {
		t.Fatal("writing to a read-only device succeeded")
	}
}

func TestABackslashInTableParametersReachesTheKernelAsWritten(t *testing.T) {
	c := vmClient(t)
	loop := loopDevice(t, 4<<20)
	// The kernel unescapes backslashes in parameters: the path only
	// resolves if LoadTable sent the backslash escaped.
	link := filepath.Join(t.TempDir(), `back\slash`)
	if err := os.Symlink(loop.Path, link); err != nil {
		t.Fatal(err)
	}
	name := devName(t)
	activate(t, c, name, []Target{{Start: 0, Length: 2048, Type: "linear", Params: link + " 0"}}, LoadOptions{})
	wantTable(t, c, name, []Target{{Start: 0, Length: 2048, Type: "linear", Params: majMin(loop.Dev) + " 0"}})
}

func TestAMessageReturnsTheKernelsReplyAsDmsetupShowsIt(t *testing.T) {
	c := vmClient(t)
	name := devName(t)
	activate(t, c, name, []Target{{Start: 0, Length: 2048, Type: "zero"}}, LoadOptions{})
	empty, err := c.Message(name, 0, "@stats_list")
	if err != nil {
		t.Fatal(err)
	}
	if empty != "" {
		t.Errorf("@stats_list on a fresh device = %q, want empty", empty)
	}
	id, err := c.Message(name, 0, "@stats_create - /2")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(id) != "0" {
		t.Fatalf("@stats_create replied %q, want region id 0", id)
	}
	list, err := c.Message(name, 0, "@stats_list")
	if err != nil {
		t.Fatal(err)
	}
	oracle := dmsetup(t, "message", name, "0", "@stats_list")
	if strings.TrimSpace(list) != strings.TrimSpace(oracle) || list == "" {
		t.Errorf("@stats_list = %q, dmsetup message gives %q", list, oracle)
	}
	if _, err := c.Message(name, 0, "@stats_delete 0"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Message(name, 0, "no_such_message"); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("unknown message = %v, want ErrInvalidArgument", err)
	}
}

func TestRenameMovesTheNodeToTheNewName(t *testing.T) {
	c := vmClient(t)
	name, newName := devName(t), devName(t)
	info := activate(t, c, name, []Target{{Start: 0, Length: 2048, Type: "zero"}}, LoadOptions{})
	removeOnCleanup(t, c, newName)
	if err := c.Rename(context.Background(), name, newName); err != nil {
		t.Fatal(err)
	}
	wantNode(t, newName, info.Dev)
	wantNoNode(t, name)
	if _, err := c.Info(name); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Info(old name) = %v, want ErrNotFound", err)
	}
	if got := wantInfoMatchesDmsetup(t, c, newName); got.Dev != info.Dev || got.UUID != info.UUID {
		t.Fatalf("renamed device Info = %+v, was %+v", got, info)
	}
	if err := c.Rename(context.Background(), newName, "control"); !errors.Is(err, ErrInvalidName) {
		t.Fatalf("Rename to \"control\" = %v, want ErrInvalidName", err)
	}
}

func TestManyGoroutinesShareTheClient(t *testing.T) {
	c := vmClient(t)
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		name := devName(t)
		removeOnCleanup(t, c, name)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Create(name, CreateOptions{}); err != nil {
				errs <- err
				return
			}
			if err := c.LoadTable(name, []Target{{Start: 0, Length: 1024, Type: "zero"}}, LoadOptions{}); err != nil {
				errs <- err
				return
			}
			if err := c.Resume(context.Background(), name); err != nil {
				errs <- err
				return
			}
			if _, err := c.Status(name, StatusOptions{}); err != nil {
				errs <- err
				return
			}
			errs <- c.Remove(context.Background(), name, RemoveOptions{Retries: 8})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// Not an assertion: how long the ioctl path takes per device compared with
// dmsetup processes in the same guest.
func TestMeasureCreateLoadResumeRemove(t *testing.T) {
	c := vmClient(t)
	n := 30
	if c.UdevRunning() {
		n = 8 // every node waits for udev, which is slow under emulation
	}
	table := []Target{{Start: 0, Length: 2048, Type: "zero"}}
	start := time.Now()
	for i := 0; i < n; i++ {
		name := devName(t)
		removeOnCleanup(t, c, name)
		if _, err := c.Create(name, CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := c.LoadTable(name, table, LoadOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := c.Resume(context.Background(), name); err != nil {
			t.Fatal(err)
		}
		if err := c.Remove(context.Background(), name, RemoveOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ours := time.Since(start) / time.Duration(n)
	start = time.Now()
	for i := 0; i < n; i++ {
		name := devName(t)
		removeOnCleanup(t, c, name)
		dmsetup(t, "create", name, "--table", "0 2048 zero")
		dmsetup(t, "remove", name)
	}
	theirs := time.Since(start) / time.Duration(n)
	t.Logf("create+load+resume+remove: dm %v per device, dmsetup create+remove %v per device (%.1fx), udev=%v",
		ours, theirs, float64(theirs)/float64(ours), c.UdevRunning())
}

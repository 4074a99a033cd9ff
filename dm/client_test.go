package dm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func manyDevices(n int) []Device {
	devs := make([]Device, n)
	for i := range devs {
		devs[i] = Device{
			Name: fmt.Sprintf("pool-%03d-%s", i, strings.Repeat("n", i%40)),
			UUID: fmt.Sprintf("THINCTL-%064d", i),
			Dev:  unix.Mkdev(253, uint32(i)),
		}
	}
	return devs
}

func TestListDevicesGrowsTheBufferUntilThreeHundredDevicesFit(t *testing.T) {
	k := &fakeKernel{devices: manyDevices(300)}
	c := fakeClient(t, k)
	got, err := c.ListDevices()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 300 {
		t.Fatalf("got %d devices, want 300", len(got))
	}
	for i, d := range got {
		if d != k.devices[i] {
			t.Fatalf("device %d = %+v, want %+v", i, d, k.devices[i])
		}
	}
	var sizes []int
	for _, call := range k.calls {
		sizes = append(sizes, call.size)
		if call.hdr.Flags&unix.DM_UUID_FLAG == 0 {
			t.Errorf("LIST_DEVICES sent without DM_UUID_FLAG on ioctl 4.%d", k.minor)
		}
		if call.hdr.Version != sendVersion {
			t.Errorf("sent version %v, want 4.0.0", call.hdr.Version)
		}
	}
	want := []int{16 << 10, 32 << 10, 64 << 10}
	if fmt.Sprint(sizes) != fmt.Sprint(want) {
		t.Errorf("buffer sizes %v, want %v (start at 16 KiB, double on DM_BUFFER_FULL_FLAG)", sizes, want)
	}
}

func TestListDevicesOnOldKernelsReadsNamesWithoutUUIDs(t *testing.T) {
	k := &fakeKernel{minor: 26, devices: manyDevices(3)}
	c := fakeClient(t, k)
	got, err := c.ListDevices()
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range got {
		if d.Name != k.devices[i].Name || d.UUID != "" || d.Dev != k.devices[i].Dev {
			t.Errorf("device %d = %+v", i, d)
		}
	}
	if k.calls[0].hdr.Flags&unix.DM_UUID_FLAG != 0 {
		t.Error("DM_UUID_FLAG sent to a kernel older than 4.37")
	}
}

func TestAnEmptyDeviceListIsEmpty(t *testing.T) {
	c := fakeClient(t, &fakeKernel{})
	got, err := c.ListDevices()
	if err != nil || len(got) != 0 {
		t.Fatalf("ListDevices = %v, %v", got, err)
	}
}

func TestTableReadsHundredsOfTargetsThroughAGrowingBuffer(t *testing.T) {
	var ts []Target
	for i := uint64(0); i < 500; i++ {
		ts = append(ts, Target{Start: i * 8, Length: 8, Type: "linear", Params: fmt.Sprintf("7:%d %d", i%8, i*8)})
	}
	k := &fakeKernel{targets: ts}
	c := fakeClient(t, k)
	got, err := c.Table("big", TableOptions{Inactive: true})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(ts) {
		t.Fatalf("Table differs from what the kernel returned")
	}
	last := k.calls[len(k.calls)-1]
	if len(k.calls) < 2 || last.size <= initialBuffer {
		t.Errorf("expected a retry with a bigger buffer, calls: %d, last size %d", len(k.calls), last.size)
	}
	if last.hdr.Flags&unix.DM_STATUS_TABLE_FLAG == 0 || last.hdr.Flags&unix.DM_QUERY_INACTIVE_TABLE_FLAG == 0 {
		t.Errorf("Table(Inactive) sent flags %#x", last.hdr.Flags)
	}
	if last.hdr.Name != "big" {
		t.Errorf("sent name %q", last.hdr.Name)
	}
}

func TestAReplyThatNeverFitsFailsInsteadOfGrowingForever(t *testing.T) {
	k := &fakeKernel{}
	k.handle = func(cmd uint, h header, buf []byte) error {
		ne.PutUint32(buf[offFlags:], h.Flags|unix.DM_BUFFER_FULL_FLAG)
		return nil
	}
	c := fakeClient(t, k)
	if _, err := c.Status("x", StatusOptions{}); err == nil {
		t.Fatal("Status succeeded with a kernel that always says the buffer is full")
	}
	if n := len(k.calls); n > 20 {
		t.Errorf("%d calls before giving up", n)
	}
}

func TestVersionsDepsAndMessageRepliesDecode(t *testing.T) {
	k := &fakeKernel{
		versions: []TargetVersion{{"thin-pool", 1, 22, 0}, {"linear", 1, 4, 0}, {"zero", 1, 2, 0}},
		deps:     []uint64{unix.Mkdev(7, 0), unix.Mkdev(7, 1)},
		reply:    "0: 0+2048 2048 dmstats",
	}
	c := fakeClient(t, k)
	vs, err := c.ListTargetVersions()
	if err != nil || fmt.Sprint(vs) != fmt.Sprint(k.versions) {
		t.Errorf("ListTargetVersions = %v, %v", vs, err)
	}
	deps, err := c.Deps("thin")
	if err != nil || fmt.Sprint(deps) != fmt.Sprint(k.deps) {
		t.Errorf("Deps = %v, %v", deps, err)
	}
	reply, err := c.Message("pool", 0, "@stats_list")
	if err != nil || reply != k.reply {
		t.Errorf("Message = %q, %v", reply, err)
	}
	k.reply = ""
	reply, err = c.Message("pool", 0, "create_thin 1")
	if err != nil || reply != "" {
		t.Errorf("Message without a reply = %q, %v", reply, err)
	}
	call := k.calls[len(k.calls)-1]
	if call.cmd != unix.DM_TARGET_MSG {
		t.Fatalf("last call %#x", call.cmd)
	}
}

func TestLoadTableSendsEverySpecWithItsOffsetToTheNext(t *testing.T) {
	k := &fakeKernel{}
	var sent []byte
	var count uint32
	k.handle = func(cmd uint, h header, buf []byte) error {
		if cmd == unix.DM_TABLE_LOAD {
			sent = append([]byte(nil), buf[h.DataStart:h.DataSize]...)
			count = h.TargetCount
			if h.Flags&unix.DM_READONLY_FLAG == 0 {
				return unix.EPERM
			}
		}
		return nil
	}
	c := fakeClient(t, k)
	table := []Target{
		{0, 100, "linear", `/dev/loop0 0`},
		{100, 28, "zero", ""},
		{128, 8, "error", `a\b`},
	}
	if err := c.LoadTable("t", table, LoadOptions{ReadOnly: true}); err != nil {
		t.Fatal(err)
	}
	if count != 3 {
		t.Fatalf("target_count %d", count)
	}
	// Walk the way the kernel does: next is relative to the current spec.
	off := 0
	for i, want := range table {
		s := sent[off:]
		params, _ := cStringStrict(s[specSize:])
		got := Target{ne.Uint64(s), ne.Uint64(s[8:]), cString(s[specOffType : specOffType+typeLen]), params}
		wantParams := strings.ReplaceAll(want.Params, `\`, `\\`)
		if got.Start != want.Start || got.Length != want.Length || got.Type != want.Type || got.Params != wantParams {
			t.Errorf("spec %d = %+v, want %+v with params %q", i, got, want, wantParams)
		}
		next := int(ne.Uint32(s[specOffNext:]))
		if next%8 != 0 || next < specSize+len(wantParams)+1 {
			t.Errorf("spec %d next = %d", i, next)
		}
		off += next
	}
	if off != len(sent) {
		t.Errorf("specs end at %d of %d bytes", off, len(sent))
	}
}

func TestKernelErrnosBecomeSentinelsNamingTheOperationAndDevice(t *testing.T) {
	cases := []struct {
		errno syscall.Errno
		table bool
		want  error
	}{
		{unix.ENXIO, false, ErrNotFound},
		{unix.ENODEV, false, ErrNotFound},
		{unix.ENOENT, false, ErrNotFound},
		{unix.EBUSY, false, ErrBusy},
		{unix.EEXIST, false, ErrExists},
		{unix.ENODATA, false, ErrNoData},
		{unix.EPERM, false, ErrPermission},
		{unix.EACCES, false, ErrPermission},
		{unix.ENOTTY, false, ErrNotSupported},
		{unix.EOPNOTSUPP, false, ErrNotSupported},
		{unix.EINVAL, true, ErrInvalidTable},
		{unix.ENODEV, true, ErrInvalidTable},
		{unix.ENXIO, true, ErrNotFound},
		{unix.EINVAL, false, ErrInvalidArgument},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%v on table load %v", tc.errno, tc.table), func(t *testing.T) {
			k := &fakeKernel{}
			c := fakeClient(t, k)
			cmd := uint(unix.DM_DEV_STATUS)
			if tc.table {
				cmd = unix.DM_TABLE_LOAD
			}
			k.errs = map[uint][]error{cmd: {tc.errno}}
			var err error
			if tc.table {
				err = c.LoadTable("dev0", []Target{{0, 8, "zero", ""}}, LoadOptions{})
			} else {
				_, err = c.Info("dev0")
			}
			if !errors.Is(err, tc.want) || !errors.Is(err, tc.errno) {
				t.Fatalf("err = %v, want %v and %v", err, tc.want, tc.errno)
			}
			if !strings.Contains(err.Error(), "dev0") {
				t.Errorf("error %q does not name the device", err)
			}
		})
	}
}

func TestBadNamesNeverReachTheKernel(t *testing.T) {
	k := &fakeKernel{}
	c := fakeClient(t, k)
	long := strings.Repeat("x", 128)
	calls := []func() error{
		func() error { _, err := c.Create(long, CreateOptions{}); return err },
		func() error { _, err := c.Create("ok", CreateOptions{UUID: strings.Repeat("u", 129)}); return err },
		func() error { return c.LoadTable("a/b", []Target{{0, 8, "zero", ""}}, LoadOptions{}) },
		func() error { return c.Resume(context.Background(), "control") },
		func() error { return c.Suspend(".", SuspendOptions{}) },
		func() error { return c.Remove(context.Background(), "..", RemoveOptions{}) },
		func() error { return c.Rename(context.Background(), "ok", "") },
		func() error { _, err := c.Info(""); return err },
		func() error { _, err := c.Table(long, TableOptions{}); return err },
		func() error { _, err := c.Message("a\x00b", 0, "x"); return err },
	}
	for i, call := range calls {
		if err := call(); !errors.Is(err, ErrInvalidName) {
			t.Errorf("call %d: %v, want ErrInvalidName", i, err)
		}
	}
	if len(k.calls) != 0 {
		t.Fatalf("%d ioctls were issued for invalid names", len(k.calls))
	}
}

func TestBadTablesAreRefusedBeforeTheKernel(t *testing.T) {
	k := &fakeKernel{}
	c := fakeClient(t, k)
	bad := [][]Target{
		nil,
		{{0, 8, "", ""}},
		{{0, 8, "a-type-name-too-long", ""}},
		{{0, 0, "zero", ""}},
		{{0, 8, "linear", "a\x00b"}},
	}
	for i, tbl := range bad {
		if err := c.LoadTable("d", tbl, LoadOptions{}); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("table %d: %v, want ErrInvalidArgument", i, err)
		}
	}
	if len(k.calls) != 0 {
		t.Fatalf("%d ioctls issued", len(k.calls))
	}
}

func TestRemoveRetriesABusyDeviceThenGivesUp(t *testing.T) {
	k := &fakeKernel{}
	c := fakeClient(t, k)
	k.errs[unix.DM_DEV_REMOVE] = []error{unix.EBUSY, unix.EBUSY, nil}
	if err := c.Remove(context.Background(), "d", RemoveOptions{}); err != nil {
		t.Fatalf("Remove after two EBUSY = %v", err)
	}
	k.calls = nil
	k.errs[unix.DM_DEV_REMOVE] = []error{unix.EBUSY, unix.EBUSY, unix.EBUSY, unix.EBUSY, unix.EBUSY, unix.EBUSY}
	err := c.Remove(context.Background(), "d", RemoveOptions{})
	if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "5 tries") {
		t.Fatalf("Remove = %v, want ErrBusy after 5 tries", err)
	}
	if len(k.calls) != defaultRemoveRetries+1 {
		t.Errorf("%d calls, want %d", len(k.calls), defaultRemoveRetries+1)
	}
	k.calls = nil
	k.errs[unix.DM_DEV_REMOVE] = []error{unix.EBUSY, unix.EBUSY}
	if err := c.Remove(context.Background(), "d", RemoveOptions{Retries: -1}); !errors.Is(err, ErrBusy) || len(k.calls) != 1 {
		t.Fatalf("Remove without retries = %v after %d calls", err, len(k.calls))
	}
}

func TestDeferredRemoveNeedsAKernelThatHasIt(t *testing.T) {
	k := &fakeKernel{minor: 26}
	c := fakeClient(t, k)
	if err := c.Remove(context.Background(), "d", RemoveOptions{Deferred: true}); !errors.Is(err, ErrNotSupported) {
		t.Fatalf("deferred Remove on 4.26 = %v", err)
	}
	if err := c.CancelDeferredRemove("d"); !errors.Is(err, ErrNotSupported) {
		t.Fatalf("CancelDeferredRemove on 4.26 = %v", err)
	}
	k.minor = 47
	c = fakeClient(t, k)
	k.handle = func(cmd uint, h header, buf []byte) error { return nil } // the kernel echoes the flag: still pending
	if err := c.Remove(context.Background(), "d", RemoveOptions{Deferred: true}); err != nil {
		t.Fatal(err)
	}
	if got := k.calls[len(k.calls)-1].hdr.Flags; got&unix.DM_DEFERRED_REMOVE == 0 {
		t.Errorf("flags %#x lack DM_DEFERRED_REMOVE", got)
	}
}

func TestWithoutUdevCreateRemoveAndRenameManageTheNode(t *testing.T) {
	k := &fakeKernel{}
	dev := unix.Mkdev(253, 9)
	k.handle = func(cmd uint, h header, buf []byte) error {
		if cmd == unix.DM_DEV_CREATE || cmd == unix.DM_DEV_SUSPEND || cmd == unix.DM_DEV_RENAME {
			ne.PutUint64(buf[offDev:], dev)
		}
		return nil
	}
	c := fakeClient(t, k)
	info, err := c.Create("vol", CreateOptions{UUID: "U-1"})
	if err != nil {
		t.Fatal(err)
	}
	if info.Dev != dev || k.calls[0].hdr.UUID != "U-1" || k.calls[0].hdr.EventNr != 0 {
		t.Fatalf("Create: info %+v, sent %+v", info, k.calls[0].hdr)
	}
	wantBlockNode(t, filepath.Join(c.devDir, "vol"), dev)
	if err := os.Remove(filepath.Join(c.devDir, "vol")); err != nil {
		t.Fatal(err)
	}
	if err := c.Resume(context.Background(), "vol"); err != nil {
		t.Fatal(err)
	}
	wantBlockNode(t, filepath.Join(c.devDir, "vol"), dev) // Resume repairs a missing node
	if err := c.Rename(context.Background(), "vol", "vol2"); err != nil {
		t.Fatal(err)
	}
	wantBlockNode(t, filepath.Join(c.devDir, "vol2"), dev)
	if _, err := os.Lstat(filepath.Join(c.devDir, "vol")); !os.IsNotExist(err) {
		t.Fatalf("old node still there: %v", err)
	}
	if err := c.Remove(context.Background(), "vol2", RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(c.devDir, "vol2")); !os.IsNotExist(err) {
		t.Fatalf("node survived Remove: %v", err)
	}
}

func TestWithUdevTheClientSendsACookieAndWaitsForUdevsNode(t *testing.T) {
	k := &fakeKernel{}
	dev := unix.Mkdev(253, 3)
	k.handle = func(cmd uint, h header, buf []byte) error {
		ne.PutUint64(buf[offDev:], dev)
		if cmd == unix.DM_DEV_SUSPEND || cmd == unix.DM_DEV_REMOVE {
			ne.PutUint32(buf[offFlags:], h.Flags|unix.DM_UEVENT_GENERATED_FLAG|unix.DM_ACTIVE_PRESENT_FLAG)
		}
		return nil
	}
	c := fakeClient(t, k)
	c.udevControl = filepath.Join(c.devDir, "udev-control")
	if err := os.WriteFile(c.udevControl, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	c.SetUdevTimeout(2 * time.Second)
	if _, err := c.Create("u", CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(c.devDir, "u")); !os.IsNotExist(err) {
		t.Fatal("Create made a node although udev runs")
	}
	// "udev" makes the node a little later.
	go func() {
		time.Sleep(50 * time.Millisecond)
		_ = unix.Mknod(filepath.Join(c.devDir, "u"), unix.S_IFBLK|0o600, int(dev))
	}()
	if err := c.Resume(context.Background(), "u"); err != nil {
		t.Fatal(err)
	}
	resume := k.calls[len(k.calls)-1].hdr
	if want := uint32(0x0060) << 16; resume.EventNr != want {
		t.Errorf("resume cookie %#x, want %#x (primary source + no library fallback, flags only)", resume.EventNr, want)
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		_ = os.Remove(filepath.Join(c.devDir, "u"))
	}()
	if err := c.Remove(context.Background(), "u", RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	if remove := k.calls[len(k.calls)-1].hdr; remove.EventNr != 0 {
		t.Errorf("remove cookie %#x, want none (the rules ignore remove events; a cookie only makes udev run dmsetup udevcomplete)", remove.EventNr)
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		_ = unix.Mknod(filepath.Join(c.devDir, "u"), unix.S_IFBLK|0o600, int(dev))
	}()
	if err := c.ResumeWith(context.Background(), "u", ResumeOptions{NoDiskRules: true}); err != nil {
		t.Fatal(err)
	}
	if resume := k.calls[len(k.calls)-1].hdr; resume.EventNr != uint32(0x0064)<<16 {
		t.Errorf("resume cookie without disk rules %#x, want %#x (primary source + no library fallback + disable disk rules)", resume.EventNr, uint32(0x0064)<<16)
	}
	_ = os.Remove(filepath.Join(c.devDir, "u"))

	c.SetUdevTimeout(30 * time.Millisecond)
	err := c.Resume(context.Background(), "u")
	if err == nil || !strings.Contains(err.Error(), "udev did not create") {
		t.Fatalf("Resume without udev's node = %v, want a timeout naming udev", err)
	}
}

func TestAClosedClientRefusesWork(t *testing.T) {
	c := newClient()
	c.kmsgPath = ""
	if _, err := c.Info("x"); !errors.Is(err, unix.EBADF) {
		t.Fatalf("Info on a closed client = %v, want EBADF", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestTheLoggerSeesEveryKernelOperation(t *testing.T) {
	k := &fakeKernel{}
	c := fakeClient(t, k)
	var lines []string
	c.SetLogger(func(format string, args ...any) { lines = append(lines, fmt.Sprintf(format, args...)) })
	k.errs[unix.DM_DEV_STATUS] = []error{unix.ENXIO}
	_, _ = c.Info("gone")
	_ = c.Suspend("s", SuspendOptions{NoFlush: true, SkipLockfs: true})
	c.SetLogger(nil)
	_, _ = c.Info("quiet")
	if len(lines) != 2 || !strings.Contains(lines[0], "info gone") || !strings.Contains(lines[1], "suspend s: ok") {
		t.Fatalf("log lines %q", lines)
	}
	if f := k.calls[1].hdr.Flags; f != unix.DM_SUSPEND_FLAG|unix.DM_NOFLUSH_FLAG|unix.DM_SKIP_LOCKFS_FLAG {
		t.Errorf("suspend flags %#x", f)
	}
}

func wantBlockNode(t *testing.T, p string, dev uint64) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK || st.Rdev != dev || st.Mode&0o777 != nodeMode {
		t.Fatalf("%s: mode %o dev %s, want block %s mode 0600", p, st.Mode, devString(st.Rdev), devString(dev))
	}
}

// A caller that will not use /dev/mapper/<name> again does not wait for
// udev to drop it: with udev running and the node left in place, Remove
// with NoNodeWait returns at once and leaves udev's node alone, and the
// same call without it still waits (and times out here).
func TestRemoveWithNoNodeWaitSkipsTheWaitForUdev(t *testing.T) {
	k := &fakeKernel{}
	dev := unix.Mkdev(253, 4)
	k.handle = func(cmd uint, h header, buf []byte) error {
		ne.PutUint64(buf[offDev:], dev)
		if cmd == unix.DM_DEV_REMOVE {
			ne.PutUint32(buf[offFlags:], h.Flags|unix.DM_UEVENT_GENERATED_FLAG)
		}
		return nil
	}
	c := fakeClient(t, k)
	c.udevControl = filepath.Join(c.devDir, "udev-control")
	if err := os.WriteFile(c.udevControl, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	c.SetUdevTimeout(time.Second)
	node := filepath.Join(c.devDir, "n")
	if err := unix.Mknod(node, unix.S_IFBLK|0o600, int(dev)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := c.Remove(context.Background(), "n", RemoveOptions{NoNodeWait: true}); err != nil {
		t.Fatalf("Remove with NoNodeWait = %v", err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("Remove with NoNodeWait took %v; it waited for udev", d)
	}
	if _, err := os.Lstat(node); err != nil {
		t.Fatalf("Remove touched udev's node: %v", err)
	}
	c.SetUdevTimeout(30 * time.Millisecond)
	if err := c.Remove(context.Background(), "n", RemoveOptions{}); err == nil || !strings.Contains(err.Error(), "udev did not remove") {
		t.Fatalf("Remove without NoNodeWait = %v, want a timeout naming udev", err)
	}
}

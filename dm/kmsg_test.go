package dm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestKmsgRecordsYieldTheirMessageText(t *testing.T) {
	cases := []struct {
		name string
		rec  string
		want string
		ok   bool
	}{
		{"a plain record", "3,1234,5678901,-;device-mapper: table: 253:0: linear: Device lookup failed (-ENODEV)\n",
			"device-mapper: table: 253:0: linear: Device lookup failed (-ENODEV)", true},
		{"continuation lines are dropped", "4,9,10,-;device-mapper: ioctl: error adding target to table\n SUBSYSTEM=block\n DEVICE=b253:0\n",
			"device-mapper: ioctl: error adding target to table", true},
		{"newer kernels add a caller field", "6,339,5140900,-,caller=T123;hello\n", "hello", true},
		{"escaped bytes are restored", `6,1,2,-;a\x5cb` + "\n", `a\b`, true},
		{"a record without a prefix is skipped", "no prefix here", "", false},
		{"a short prefix is skipped", "1,2;x", "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseKmsgRecord(tc.rec)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("parseKmsgRecord = %q, %v; want %q, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestTheKernelReasonKeepsDeviceMapperLinesAboutThisDevice(t *testing.T) {
	msgs := []string{
		"loop0: detected capacity change from 0 to 8192",
		"device-mapper: table: 253:4: thin-pool: Error opening metadata block device",
		"device-mapper: table: 253:9: linear: Device lookup failed",
		"device-mapper: ioctl: error adding target to table",
	}
	got := pickReason(msgs, unix.Mkdev(253, 4))
	want := "device-mapper: table: 253:4: thin-pool: Error opening metadata block device; device-mapper: ioctl: error adding target to table"
	if got != want {
		t.Fatalf("pickReason = %q\nwant %q", got, want)
	}
	if all := pickReason(msgs, 0); strings.Count(all, "device-mapper:") != 3 {
		t.Fatalf("without a device number: %q", all)
	}
	long := []string{"device-mapper: " + strings.Repeat("x", 5000)}
	if r := pickReason(long, 0); len(r) > kmsgMaxReason+3 {
		t.Fatalf("reason of %d bytes is not bounded", len(r))
	}
}

func TestAMissingKernelLogMeansNoReason(t *testing.T) {
	c := newClient()
	c.kmsgPath = "/nonexistent/kmsg"
	k := c.markKmsg()
	if k != nil {
		t.Fatal("opened a missing log")
	}
	if r := k.reason(0); r != "" {
		t.Fatalf("reason = %q", r)
	}
}

func TestTheKernelLogIsReadFromTheMarkWithoutBlocking(t *testing.T) {
	c := newClient()
	k := c.markKmsg()
	if k == nil {
		t.Skip("/dev/kmsg is not readable here")
	}
	// Nothing device-mapper related was logged since the mark (this host
	// has no device-mapper), and reading must return at once.
	if r := k.reason(0); r != "" {
		t.Fatalf("reason = %q, want empty", r)
	}
}

func TestAClientKeepsAFewKernelLogDescriptorsForItsNextIoctlsAndClosesThemWithItself(t *testing.T) {
	c := newClient()
	c.kmsgPath = filepath.Join(t.TempDir(), "kmsg") // a stand-in: only opened and positioned
	if err := os.WriteFile(c.kmsgPath, []byte("3,1,1,-;device-mapper: old\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var held []*kmsgCursor
	for range kmsgIdleMax + 2 { // as many ioctls at once
		k := c.markKmsg()
		if k == nil {
			t.Fatal("markKmsg = nil")
		}
		if off, _ := unix.Seek(k.fd, 0, unix.SEEK_CUR); off == 0 {
			t.Fatal("a cursor is not at the log's end")
		}
		held = append(held, k)
	}
	fds := map[int]bool{}
	for _, k := range held {
		fds[k.fd] = true
		k.close()
	}
	if len(c.kmsgIdle) != kmsgIdleMax {
		t.Fatalf("kept %d descriptors, want %d", len(c.kmsgIdle), kmsgIdleMax)
	}
	k := c.markKmsg()
	if !fds[k.fd] {
		t.Fatalf("the next ioctl opened descriptor %d instead of reusing one of %v", k.fd, c.kmsgIdle)
	}
	if off, _ := unix.Seek(k.fd, 0, unix.SEEK_CUR); off == 0 {
		t.Fatal("a reused cursor is not at the log's end")
	}
	kept := append([]int{k.fd}, c.kmsgIdle...)
	c.closeKmsg()
	k.close() // after Close: closed, not kept
	if len(c.kmsgIdle) != 0 {
		t.Fatalf("a closed client keeps %v", c.kmsgIdle)
	}
	for _, fd := range kept {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != unix.EBADF {
			t.Errorf("descriptor %d still open after Close (%v)", fd, err)
		}
	}
}

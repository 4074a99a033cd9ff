package devnode

import (
	"testing"

	"github.com/thinctl/thinctl/fs"
)

func TestOnlyUdevsOwnProcessesAreWaitedOutOnRemoval(t *testing.T) {
	cases := []struct {
		name    string
		holders []fs.Holder
		beyond  bool
	}{
		{"no holder seen is worth waiting for", nil, false},
		{"a udev worker probing the device is waited out", []fs.Holder{{PID: 7, Command: "(udev-worker)"}}, false},
		{"the udev daemon and blkid are waited out", []fs.Holder{{PID: 7, Command: "systemd-udevd"}, {PID: 8, Command: "blkid"}}, false},
		{"a shell with the device open is not", []fs.Holder{{PID: 9, Command: "bash"}}, true},
		{"a worker next to a real holder is not", []fs.Holder{{PID: 7, Command: "(udev-worker)"}, {PID: 10, Command: "sleep"}}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := HeldBeyondUdev(c.holders); got != c.beyond {
				t.Fatalf("HeldBeyondUdev(%v) = %v, want %v", c.holders, got, c.beyond)
			}
		})
	}
}

package main

import (
	"strings"
	"testing"

	"github.com/thinctl/thinctl/thinpool"
)

func TestPoolWatchRefusesBadFlagsWithOneLine(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"a zero threshold", []string{"--autoextend-threshold", "0"}, "invalid --autoextend-threshold 0%: give 1% to 100%"},
		{"a threshold above 100%", []string{"--autoextend-threshold", "150%"}, `invalid --autoextend-threshold "150%"`},
		{"a zero step", []string{"--autoextend-step", "0%"}, "invalid --autoextend-step 0%"},
		{"a busy-looping interval", []string{"--interval", "1ms"}, "invalid --interval 1ms: give at least 100ms"},
		{"an interval that is not a duration", []string{"--interval", "often"}, "--interval"},
		{"metadata past the kernel's limit", []string{"--max-metadata-size", "20G"}, "invalid --max-metadata-size 20.0G"},
		{"an empty thin command", []string{"--thin-command", " "}, "--thin-command is empty"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.choose = fakeChoice("devicemapper", true)
			r := h.rooted(append([]string{"pool", "watch"}, tt.args...)...)
			if r.code != 2 || !strings.Contains(r.stderr, tt.want) {
				t.Fatalf("exit %d, stderr %q: want 2 and %q", r.code, r.stderr, tt.want)
			}
		})
	}
}

func TestPoolWatchUnderOverlay2IsDevicemapperOnly(t *testing.T) {
	h := newHarness(t)
	h.choose = fakeChoice("overlay2", true)
	r := h.rooted("pool", "watch")
	if r.code != 1 || !strings.Contains(r.stderr, "pool watch is only available with the devicemapper driver") {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestPoolWatchFlagsBecomeThePolicy(t *testing.T) {
	host := thinpool.HostSpace{Loop: true, Total: 200 * thinpool.GiB}
	p := watchOptions{}.policy(host)
	if p.Threshold != 80 || p.Step != 20 || p.HostReserve != 10*thinpool.GiB || p.MaxDataSize != 0 {
		t.Fatalf("defaults: %+v", p)
	}
	p = watchOptions{threshold: 100, thresholdSet: true, step: 5, stepSet: true, hostReserveSet: true, maxData: thinpool.GiB}.policy(host)
	if p.Autoextend() || p.Step != 5 || p.HostReserve != 0 || p.MaxDataSize != thinpool.GiB {
		t.Fatalf("given flags: %+v", p)
	}
}

func TestPreallocateDoesNotApplyToExistingDevices(t *testing.T) {
	h := newHarness(t)
	h.choose = fakeChoice("devicemapper", false)
	r := h.rooted("pool", "init", "--thinpool-dev", "tp", "--preallocate")
	if r.code != 2 || !strings.Contains(r.stderr, "--preallocate does not apply to existing devices") {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
}

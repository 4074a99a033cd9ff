package systemd

import (
	"os/exec"
	"strings"
	"testing"
)

// TestEscapePathAgreesWithSystemdEscape compares EscapePath and
// UnescapePath with Debian's systemd-escape --path.
func TestEscapePathAgreesWithSystemdEscape(t *testing.T) {
	if _, err := exec.LookPath("systemd-escape"); err != nil {
		t.Skip("no systemd-escape (Debian's systemd package; make test-packaging installs it)")
	}
	for _, tc := range []struct{ name, path string }{
		{"the default root", "/var/lib/thinctl"},
		{"a dash in a name", "/srv/pool-a"},
		{"doubled and trailing slashes", "//srv//pools/a/"},
		{"a space, a dot first in a later name, a colon", "/srv/my pool/.hidden/a:b"},
		{"a leading dot", ".rel/x"},
		{"non-ASCII bytes", "/srv/pöol"},
		{"the root directory", "/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := exec.Command("systemd-escape", "--path", tc.path).Output()
			if err != nil {
				t.Fatalf("systemd-escape --path %q: %v", tc.path, err)
			}
			want := strings.TrimSuffix(string(out), "\n")
			if got := EscapePath(tc.path); got != want {
				t.Errorf("EscapePath(%q) = %q, systemd-escape says %q", tc.path, got, want)
			}
			back, err := exec.Command("systemd-escape", "--unescape", "--path", want).Output()
			if err != nil {
				t.Fatalf("systemd-escape --unescape --path %q: %v", want, err)
			}
			if got, err := UnescapePath(want); err != nil || got != strings.TrimSuffix(string(back), "\n") {
				t.Errorf("UnescapePath(%q) = %q, %v; systemd-escape says %q", want, got, err, back)
			}
		})
	}
}

// TestExpandReplacesTheSpecifiersTheUnitsUse checks %i, %I, %f and %%, and
// the refusal of any other specifier and of broken escapes.
func TestExpandReplacesTheSpecifiersTheUnitsUse(t *testing.T) {
	got, err := Expand(`/usr/bin/thinctl --root %f pool up # %i %I 100%%`, `srv-pool\x2da`)
	if want := `/usr/bin/thinctl --root /srv/pool-a pool up # srv-pool\x2da srv/pool-a 100%`; err != nil || got != want {
		t.Errorf("Expand = %q, %v; want %q", got, err, want)
	}
	for _, tc := range []struct{ name, line, instance string }{
		{"an unsupported specifier", "thinctl --root %h", "a"},
		{"a lone percent sign at the end", "thinctl 100%", "a"},
		{"a truncated escape in the instance", "%f", `srv-pool\x2`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, err := Expand(tc.line, tc.instance); err == nil {
				t.Errorf("Expand(%q, %q) = %q, want an error", tc.line, tc.instance, got)
			}
		})
	}
}

// TestThePoolUnitIsOrderedAsDocumented reads the ordering docs/systemd.md
// explains back from the unit file.
func TestThePoolUnitIsOrderedAsDocumented(t *testing.T) {
	expectDirectives(t, PoolService, []directive{
		{"Unit", "DefaultDependencies", []string{"no"}},
		{"Unit", "RequiresMountsFor", []string{"%f"}},
		{"Unit", "After", []string{"systemd-udevd.service systemd-tmpfiles-setup-dev.service systemd-modules-load.service"}},
		{"Unit", "Before", []string{"local-fs.target containerd.service docker.service", "shutdown.target"}},
		{"Unit", "Conflicts", []string{"shutdown.target"}},
		{"Service", "Type", []string{"oneshot"}},
		{"Service", "RemainAfterExit", []string{"yes"}},
		{"Service", "ExecStart", []string{"/usr/bin/thinctl --root %f pool up"}},
		{"Service", "ExecStop", []string{"/usr/bin/thinctl --root %f pool down"}},
		{"Install", "WantedBy", []string{"local-fs.target"}},
		{"Install", "DefaultInstance", []string{"var-lib-thinctl"}},
	})
	if got, _ := Directives(GCService, "Service", "ExecStart"); strings.Join(got, "|") != "/usr/bin/thinctl --root %f gc" {
		t.Errorf("%s ExecStart= is %q", GCService, got)
	}
	if got, _ := Directives(GCService, "Unit", "Requisite"); strings.Join(got, "|") != "thinctl-pool@%i.service" {
		t.Errorf("%s Requisite= is %q: gc must not bring a pool up behind the operator's back", GCService, got)
	}
}

// TestTheWatchUnitRunsPoolWatchAfterThePoolAndStopsWithIt reads back what
// docs/systemd.md says of thinctl-watch@.service.
func TestTheWatchUnitRunsPoolWatchAfterThePoolAndStopsWithIt(t *testing.T) {
	expectDirectives(t, WatchService, []directive{
		{"Unit", "Requires", []string{"thinctl-pool@%i.service"}},
		{"Unit", "After", []string{"thinctl-pool@%i.service"}},
		{"Unit", "PartOf", []string{"thinctl-pool@%i.service"}},
		{"Service", "ExecStart", []string{"/usr/bin/thinctl --root %f pool watch $THINCTL_WATCH_ARGS"}},
		{"Service", "Environment", []string{"THINCTL_WATCH_ARGS="}},
		{"Service", "Restart", []string{"on-failure"}},
		{"Install", "WantedBy", []string{"multi-user.target"}},
		{"Install", "DefaultInstance", []string{"var-lib-thinctl"}},
	})
}

// directive is a key of a unit file's section and the values it must have.
type directive struct {
	section, key string
	want         []string
}

// expectDirectives reads each directive back from unit.
func expectDirectives(t *testing.T, unit string, ds []directive) {
	t.Helper()
	for _, d := range ds {
		got, err := Directives(unit, d.section, d.key)
		if err != nil || strings.Join(got, "|") != strings.Join(d.want, "|") {
			t.Errorf("%s [%s] %s= is %q (%v), want %q", unit, d.section, d.key, got, err, d.want)
		}
	}
}

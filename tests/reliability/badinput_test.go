package reliability

import (
	"strings"
	"testing"
	"unicode"

	"github.com/thinctl/thinctl/thinpool"
)

// badInput is one command line that must be refused.
type badInput struct {
	name   string
	args   []string
	code   int    // the documented exit status (docs/cli.md)
	stderr string // what the one-line error must say
}

// idAndSizeCases are refused the same way by every driver.
func idAndSizeCases() []badInput {
	long := strings.Repeat("x", 129)
	return []badInput{
		{"an ID with a slash is a usage error", []string{"create", "a/b"}, 2, "contains '/'"},
		{"the ID .. is a usage error", []string{"create", ".."}, 2, "starts with '.'"},
		{"an ID with a control character is a usage error", []string{"create", "a\x01b"}, 2, `contains '\x01'`},
		{"an ID with a newline is a usage error", []string{"create", "a\nb"}, 2, `contains '\n'`},
		{"an ID with an escape sequence is a usage error", []string{"create", "a\x1b[2Jb"}, 2, `contains '\x1b'`},
		{"an ID of 129 bytes is a usage error", []string{"create", long}, 2, "129 characters long"},
		{"an empty ID is a usage error", []string{"create", ""}, 2, "empty"},
		{"a bad parent ID is a usage error", []string{"create", "c", "--parent", "../x"}, 2, "invalid"},
		{"a missing parent fails and names it", []string{"create", "c", "--parent", "nope"}, 1, "nope"},
		{"a duplicate ID fails", []string{"create", "a"}, 1, "exists"},
		{"a zero size is a usage error", []string{"create", "c", "--size", "0"}, 2, "--size"},
		{"a negative size is a usage error", []string{"create", "c", "--size", "-1G"}, 2, "--size"},
		{"a fractional size is a usage error", []string{"create", "c", "--size", "1.5G"}, 2, "--size"},
		{"a garbage size is a usage error", []string{"create", "c", "--size", "lots"}, 2, "--size"},
		{"a size beyond 2^63 bytes is a usage error", []string{"create", "c", "--size", "9999999999999999999999"}, 2, "--size"},
		{"an unknown driver is a usage error", []string{"--driver", "zfs", "list"}, 2, "--driver"},
		{"an unknown command is a usage error", []string{"frobnicate"}, 2, "frobnicate"},
		{"mounting a missing device fails", []string{"mount", "nope"}, 1, "nope"},
		{"removing a missing device fails", []string{"remove", "nope"}, 1, "nope"},
		{"info on an invalid ID is a usage error", []string{"info", "a/../b"}, 2, "invalid"},
	}
}

// assertRefused runs every case on r and asserts the exit status, the
// message, a single printable error line and an unchanged state tree.
func assertRefused(t *testing.T, r *rig, cases []badInput, digest func() map[string]string) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r.t = t
			before := digest()
			res := r.run(tc.args...)
			if res.code != tc.code || !strings.Contains(res.stderr, tc.stderr) {
				t.Fatalf("want exit %d with %q on stderr, got %s", tc.code, tc.stderr, res)
			}
			lines := strings.Split(strings.TrimRight(res.stderr, "\n"), "\n")
			if !strings.HasPrefix(lines[0], "thinctl: ") {
				t.Errorf("the error does not start with 'thinctl: ': %q", lines[0])
			}
			if len(lines) > 2 || (len(lines) == 2 && !strings.HasPrefix(lines[1], "hint: ")) {
				t.Errorf("want one error line and at most a hint line, got %q", res.stderr)
			}
			for _, c := range res.stderr {
				if c != '\n' && unicode.IsControl(c) {
					t.Errorf("stderr carries the raw control character %q; IDs must be printed escaped:\n%q", c, res.stderr)
					break
				}
			}
			if d := diffDigest(before, digest()); d != "" {
				t.Errorf("the state under the root changed:\n%s", d)
			}
		})
	}
}

// TestReliabilityBadInputOverlay2 runs the driver-independent bad input
// against the overlay2 driver on the host.
func TestReliabilityBadInputOverlay2(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds and runs the thinctl binary")
	}
	r := newRig(t, t.TempDir())
	r.env = []string{"THINCTL_FAILPOINTS="}
	if res := r.run("--driver", "overlay2", "pool", "init"); res.code != 0 {
		t.Skipf("overlay2 is not available here: %s", res)
	}
	r.must("create", "a")
	assertRefused(t, r, idAndSizeCases(), func() map[string]string { return treeDigest(t, r.root, 1<<20) })
}

// TestValidateIDRefusesWhatTheCommandLineCannotCarry covers the byte the
// kernel's argv cannot hold (NUL), through the library's validator.
func TestValidateIDRefusesWhatTheCommandLineCannotCarry(t *testing.T) {
	for _, id := range []string{"a\x00b", "\x00", "a\x7f", "é", "a b"} {
		if err := thinpool.ValidateID(id); err == nil {
			t.Errorf("ValidateID(%q) = nil, want an error", id)
		}
	}
	if err := thinpool.ValidateID(strings.Repeat("x", 128)); err != nil {
		t.Errorf("ValidateID(128 x) = %v, want nil", err)
	}
}

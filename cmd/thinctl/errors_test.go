package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/dm"
	"github.com/thinctl/thinctl/driver"
	"github.com/thinctl/thinctl/thinpool"
)

// fakeChoice makes driver selection return name, with its home existing
// or not, without touching the host.
func fakeChoice(name string, initialized bool) func(root, n string) (driver.Choice, error) {
	return func(root, n string) (driver.Choice, error) {
		return driver.Choice{Name: name, Root: root, Home: filepath.Join(root, name), Reason: name + ": test",
			Explicit: n != "auto" && n != "", Initialized: initialized}, nil
	}
}

// TestUsageAndFailureExits runs command lines that must fail before any
// backend is opened and checks the exit status and the error's wording.
func TestUsageAndFailureExits(t *testing.T) {
	long := strings.Repeat("a", 129)
	tests := []struct {
		name     string
		args     []string
		euid     int
		driver   string // fake choice; "" uses a not-initialized overlay2
		code     int
		stderr   []string // substrings, in order
		noStdout bool
	}{
		{name: "an unknown command is a usage error", args: []string{"frobnicate"}, code: 2,
			stderr: []string{`thinctl: unknown command "frobnicate"`, "hint: run 'thinctl --help'"}},
		{name: "an unknown pool subcommand is a usage error", args: []string{"pool", "shrink"}, code: 2,
			stderr: []string{`unknown command "pool shrink"`}},
		{name: "pool alone needs a subcommand", args: []string{"pool"}, code: 2,
			stderr: []string{`"pool" needs a subcommand`, "thinctl pool --help"}},
		{name: "no command prints the usage on stderr", args: nil, code: 2,
			stderr: []string{"Usage:", "Commands:"}},
		{name: "an unknown global flag is a usage error", args: []string{"--colour", "list"}, code: 2,
			stderr: []string{"thinctl: unknown flag --colour"}},
		{name: "an unknown command flag names the flag", args: []string{"create", "web", "--bogus"}, code: 2,
			stderr: []string{"thinctl: create: unknown flag --bogus", "hint: run 'thinctl create --help'"}},
		{name: "a flag without its value says so", args: []string{"create", "web", "--parent"}, code: 2,
			stderr: []string{"flag --parent needs a value"}},
		{name: "a zero size names the flag", args: []string{"create", "web", "--size", "0"}, code: 2,
			stderr: []string{`thinctl: create: invalid --size "0": zero`}},
		{name: "a negative size names the flag", args: []string{"create", "web", "--size", "-1G"}, code: 2,
			stderr: []string{`invalid --size "-1G": negative`}},
		{name: "a garbage size names the flag", args: []string{"pool", "init", "--data-size=lots"}, code: 2,
			stderr: []string{`thinctl: pool init: invalid --data-size "lots": not a size`}},
		{name: "an overflowing size names the flag", args: []string{"pool", "grow", "--data-size", "99999999T"}, code: 2,
			stderr: []string{`invalid --data-size "99999999T": too large`}},
		{name: "a block size off the 64K grid is refused", args: []string{"pool", "init", "--block-size", "96K"}, code: 2,
			stderr: []string{`invalid --block-size "96.0K": use a multiple of 64K`}},
		{name: "a min free space of a hundred percent is refused", args: []string{"pool", "init", "--min-free-space", "100%"}, code: 2,
			stderr: []string{`invalid --min-free-space "100%": out of range; use a percentage from 0 to below 100`}},
		{name: "an unknown filesystem is refused", args: []string{"pool", "init", "--fs", "btrfs"}, code: 2,
			stderr: []string{`invalid --fs "btrfs": must be one of ext4, xfs`}},
		{name: "a data device needs a metadata device", args: []string{"pool", "init", "--data-dev", "/dev/sdb"}, code: 2,
			stderr: []string{"--data-dev and --metadata-dev go together"}},
		{name: "a thin-pool device excludes raw devices", args: []string{"pool", "init", "--thinpool-dev", "tp", "--data-dev", "/dev/sdb", "--metadata-dev", "/dev/sdc"}, code: 2,
			stderr: []string{"--thinpool-dev excludes"}},
		{name: "sizes do not apply to existing devices", args: []string{"pool", "init", "--thinpool-dev", "tp", "--data-size", "1G"}, code: 2,
			stderr: []string{"--data-size does not apply"}},
		{name: "pool grow needs a size", args: []string{"pool", "grow"}, code: 2,
			stderr: []string{"give --data-size and/or --metadata-size"}},
		{name: "an id starting with a dot is refused", args: []string{"create", ".hidden"}, code: 2,
			stderr: []string{`thinctl: create .hidden: invalid ID ".hidden": device id ".hidden" starts with '.'`, "hint: IDs are 1 to 128 characters"}},
		{name: "an id starting with a dash is an unknown flag", args: []string{"create", "-web"}, code: 2,
			stderr: []string{"unknown flag -web"}},
		{name: "an id with control characters is printed escaped", args: []string{"create", "a\x1b[2J\nb"}, code: 2,
			stderr: []string{`thinctl: create a\x1b[2J\nb: invalid ID "a\x1b[2J\nb"`}},
		{name: "an id with a slash is refused", args: []string{"info", "a/b"}, code: 2,
			stderr: []string{`invalid ID "a/b"`}},
		{name: "an empty id is refused", args: []string{"remove", ""}, code: 2,
			stderr: []string{`invalid ID ""`}},
		{name: "an id over 128 characters is refused", args: []string{"mount", long}, code: 2,
			stderr: []string{"invalid ID", "limit is 128"}},
		{name: "a bad parent id is refused", args: []string{"create", "web", "--parent", "../etc"}, code: 2,
			stderr: []string{`invalid --parent "../etc"`}},
		{name: "a missing id is a usage error", args: []string{"info"}, code: 2,
			stderr: []string{"thinctl: info: missing ID"}},
		{name: "an extra argument is a usage error", args: []string{"list", "extra"}, code: 2,
			stderr: []string{`unexpected argument "extra"`}},
		{name: "an unknown driver is a usage error", args: []string{"--driver", "btrfs", "list"}, code: 2,
			stderr: []string{`invalid --driver "btrfs": must be one of auto, devicemapper, overlay2, aufs`}},
		{name: "an unknown output format is a usage error", args: []string{"list", "-o", "yaml"}, code: 2,
			stderr: []string{`invalid --output "yaml"`}},
		{name: "json is refused where there is no document", args: []string{"-o", "json", "create", "web"}, code: 2,
			stderr: []string{"-o json is not available for create"}},
		{name: "an empty root is refused", args: []string{"list", "--root="}, code: 2,
			stderr: []string{"--root must not be empty"}},
		{name: "without root privileges nothing runs", args: []string{"create", "web"}, euid: 1000, code: 1,
			stderr: []string{"thinctl: create web: permission denied", "CAP_SYS_ADMIN", "hint: run it as root, e.g. sudo thinctl create"}},
		{name: "usage errors win over missing privileges", args: []string{"create", ".x"}, euid: 1000, code: 2,
			stderr: []string{"invalid ID"}},
		{name: "pool grow under overlay2 says it is devicemapper-only", args: []string{"pool", "grow", "--data-size", "1G"}, driver: "overlay2", code: 1,
			stderr: []string{"thinctl: pool grow: pool grow is only available with the devicemapper driver (current driver: overlay2)"}},
		{name: "activate under overlay2 says it is devicemapper-only", args: []string{"activate", "web"}, driver: "overlay2", code: 1,
			stderr: []string{"activate is only available with the devicemapper driver (current driver: overlay2)"}},
		{name: "deactivate under aufs says it is devicemapper-only", args: []string{"deactivate", "web"}, driver: "aufs", code: 1,
			stderr: []string{"deactivate is only available with the devicemapper driver (current driver: aufs)"}},
		{name: "pool init size flags under overlay2 are devicemapper-only", args: []string{"pool", "init", "--data-size", "2G"}, driver: "overlay2-new", code: 1,
			stderr: []string{"pool init --data-size is only available with the devicemapper driver (current driver: overlay2)"}},
		{name: "a command on an uninitialized root points at pool init", args: []string{"list"}, code: 1,
			stderr: []string{"thinctl: list: no pool or driver home under ", "not initialized", "hint: create it first: thinctl --root"}},
		{name: "an explicit driver without its home names the home", args: []string{"--driver", "overlay2", "list"}, code: 1,
			stderr: []string{"thinctl: list: overlay2 driver home ", "/overlay2: not initialized", "hint: create it first"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.euid = tt.euid
			switch tt.driver {
			case "":
				h.choose = fakeChoice("overlay2", false)
			case "overlay2-new":
				h.choose = fakeChoice("overlay2", false)
			default:
				h.choose = fakeChoice(tt.driver, true)
			}
			r := h.rooted(tt.args...)
			if r.code != tt.code {
				t.Fatalf("exit %d, want %d\nstderr:\n%s", r.code, tt.code, r.stderr)
			}
			rest := r.stderr
			for _, want := range tt.stderr {
				i := strings.Index(rest, want)
				if i < 0 {
					t.Fatalf("stderr lacks %q (in order)\nstderr:\n%s", want, r.stderr)
				}
				rest = rest[i+len(want):]
			}
			if r.stdout != "" {
				t.Errorf("stdout should be empty on failure, got:\n%s", r.stdout)
			}
			if tt.args != nil && !strings.Contains(r.stderr, "Usage:") {
				if n := strings.Count(r.stderr, "\n"); n > 2 {
					t.Errorf("an error is one line plus at most a hint line, got %d lines:\n%s", n, r.stderr)
				}
			}
			for _, ch := range r.stderr {
				if ch != '\n' && unicode.IsControl(ch) {
					t.Errorf("stderr carries the raw control character %q:\n%q", ch, r.stderr)
				}
			}
			if ents, _ := os.ReadDir(h.root); len(ents) != 0 {
				t.Errorf("a failed command left state under the root: %v", ents)
			}
		})
	}
}

// TestDiagnoseHints checks the hint each library failure gets.
func TestDiagnoseHints(t *testing.T) {
	tests := []struct {
		name string
		cmd  string
		err  error
		code int
		hint string
	}{
		{"a full pool says how to grow it", "create", errors.Wrap(driver.ErrNoSpace, "2% free"), 1, "pool grow --data-size SIZE"},
		{"a busy device points at the holders", "remove", errors.Wrap(driver.ErrBusy, "held by pid 42 (sleep)"), 1, "stop the processes named above"},
		{"a busy pool down says to unmount", "pool down", driver.ErrBusy, 1, "unmount the devices first"},
		{"a kernel without dm names the fallback", "pool init", errors.Wrap(driver.ErrNotSupported, "no /dev/mapper/control"), 1, "this kernel lacks dm-thin-pool"},
		{"an unusable driver gets the kernel hint", "list", driver.ErrPrerequisitesMissing, 1, "lacks dm-thin-pool"},
		{"a missing device points at list", "info", errors.Wrap(driver.ErrNotFound, "device \"web\""), 1, "list' shows the devices"},
		{"a missing parent points at list", "create", errors.Wrap(driver.ErrNotFound, "parent \"web\""), 1, "list' shows the devices"},
		{"a duplicate id says to choose another", "create", errors.Wrap(driver.ErrExists, "device \"web\""), 1, "choose another ID"},
		{"a duplicate layer says the same", "create", driver.ErrExists, 1, "choose another ID"},
		{"a parent with snapshots says to remove them", "remove", driver.ErrHasChildren, 1, "remove its snapshots first"},
		{"destroy with devices suggests --force", "pool destroy", driver.ErrHasChildren, 1, "pool destroy --force"},
		{"an existing pool says so", "pool init", driver.ErrAlreadyInitialized, 1, "pool destroy"},
		{"a missing pool says to init", "list", driver.ErrNotInitialized, 1, "pool init"},
		{"a read-only pool says to check", "create", thinpool.ErrPoolReadOnly, 1, "check"},
		{"a corrupt registry says to restore the file, not to repair through it", "list", driver.ErrCorrupt, 1, "restore it from a backup"},
		{"a library id error is a usage error", "create", thinpool.ErrInvalidID, 2, "IDs are 1 to 128 characters"},
		{"permission errors from the kernel ask for root", "list", dm.ErrPermission, 1, "run it as root"},
		{"an interrupted command says what it left", "create", errors.Wrap(context.Canceled, "create web"), 1, "the step it was in was left as it was before"},
		{"an interrupted pool init says nothing is left", "pool init", errors.Wrap(context.Canceled, "mkfs"), 1, "what pool init had made is undone; run it again"},
		{"an unknown error has no hint", "list", errors.New("boom"), 1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.choose = fakeChoice("overlay2", false)
			a := h.app(nil, nil)
			c := &call{app: a, cmd: lookupCommand(strings.Fields(tt.cmd)), g: globals{root: defaultRoot, driver: "devicemapper"}}
			code, hint := diagnose(c, tt.err)
			if code != tt.code {
				t.Errorf("exit %d, want %d", code, tt.code)
			}
			if tt.hint == "" && hint != "" {
				t.Errorf("hint %q, want none", hint)
			}
			if !strings.Contains(hint, tt.hint) {
				t.Errorf("hint %q lacks %q", hint, tt.hint)
			}
		})
	}
}

func TestAutoRefusesToChooseBetweenTwoHomes(t *testing.T) {
	h := newHarness(t)
	for _, d := range []string{"overlay2", "aufs"} {
		if err := os.MkdirAll(filepath.Join(h.root, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	r := h.rooted("list")
	if r.code != 1 || !strings.Contains(r.stderr, "thinctl: list: --driver auto cannot choose: ") ||
		!strings.Contains(r.stderr, "hint: name one with --driver (overlay2 or aufs)") {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
}

func TestUnsupportedHintNamesWhatAutoPicks(t *testing.T) {
	h := newHarness(t)
	h.choose = func(root, name string) (driver.Choice, error) {
		if name == "auto" {
			return driver.Choice{Name: "overlay2"}, nil
		}
		return driver.Choice{Name: name}, nil
	}
	c := &call{app: h.app(nil, nil), g: globals{root: h.root, driver: "devicemapper"}, ch: driver.Choice{Name: "devicemapper"}}
	_, hint := diagnose(c, errors.Wrap(driver.ErrNotSupported, "no /dev/mapper/control"))
	if want := "this kernel lacks dm-thin-pool (try: modprobe dm-thin-pool); --driver auto would pick overlay2"; hint != want {
		t.Fatalf("hint %q, want %q", hint, want)
	}
}

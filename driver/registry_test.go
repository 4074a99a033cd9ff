package driver

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/pkg/errors"
)

// fakeBackend is a Backend whose answers the test sets.
type fakeBackend struct {
	name      string
	probeErr  error
	hasLayers bool
	newErr    error
	opened    *[]string
}

func (f fakeBackend) Probe(string) error    { return f.probeErr }
func (f fakeBackend) HasLayers(string) bool { return f.hasLayers }
func (f fakeBackend) New(home string, _ Options) (Driver, error) {
	if f.newErr != nil {
		return nil, f.newErr
	}
	*f.opened = append(*f.opened, home)
	return fakeDriver{f.name}, nil
}

// fakeDriver only has a name.
type fakeDriver struct{ name string }

func (f fakeDriver) String() string                                  { return f.name }
func (fakeDriver) Create(string, string, *CreateOpts) error          { return nil }
func (fakeDriver) CreateReadWrite(string, string, *CreateOpts) error { return nil }
func (fakeDriver) Remove(string) error                               { return nil }
func (fakeDriver) Get(string, string) (string, error)                { return "", nil }
func (fakeDriver) Put(string) error                                  { return nil }
func (fakeDriver) Exists(string) bool                                { return false }
func (fakeDriver) Status() []KV                                      { return nil }
func (fakeDriver) Metadata(string) (map[string]string, error)        { return nil, nil }
func (fakeDriver) Cleanup() error                                    { return nil }

var noDM = errors.Wrap(ErrNotSupported, "device-mapper thin-pool unavailable (no /dev/mapper/control)")

func TestSelect(t *testing.T) {
	type be struct {
		name      string
		probeErr  error
		hasLayers bool
	}
	cases := []struct {
		name       string
		backends   []be
		ask        string
		wantName   string
		wantReason string   // substring
		wantErr    []string // substrings of the error
		wantIs     error
	}{
		{
			name:       "auto prefers devicemapper when it is usable",
			backends:   []be{{name: "devicemapper"}, {name: "overlay2"}, {name: "aufs"}},
			ask:        "auto",
			wantName:   "devicemapper",
			wantReason: "devicemapper: first usable backend",
		},
		{
			name:       "auto falls back to overlay2 and says why",
			backends:   []be{{name: "devicemapper", probeErr: noDM}, {name: "overlay2"}, {name: "aufs"}},
			ask:        "",
			wantName:   "overlay2",
			wantReason: "overlay2: device-mapper thin-pool unavailable (no /dev/mapper/control); overlay2 usable",
		},
		{
			name: "auto falls through to aufs naming both skipped backends",
			backends: []be{
				{name: "devicemapper", probeErr: noDM},
				{name: "overlay2", probeErr: errors.Wrap(ErrNotSupported, "no overlay in /proc/filesystems")},
				{name: "aufs"},
			},
			ask:        "auto",
			wantName:   "aufs",
			wantReason: "aufs: device-mapper thin-pool unavailable (no /dev/mapper/control); overlay2 unavailable (no overlay in /proc/filesystems); aufs usable",
		},
		{
			name:       "existing layers win over a usable backend earlier in the order",
			backends:   []be{{name: "devicemapper"}, {name: "overlay2"}, {name: "aufs", hasLayers: true}},
			ask:        "auto",
			wantName:   "aufs",
			wantReason: "already holds layers",
		},
		{
			name:     "existing layers in a backend that cannot run are an error, not a switch",
			backends: []be{{name: "devicemapper", probeErr: noDM, hasLayers: true}, {name: "overlay2"}},
			ask:      "auto",
			wantErr:  []string{"devicemapper already holds layers", "refusing to switch"},
			wantIs:   ErrNotSupported,
		},
		{
			name:     "two homes with layers are an error naming both",
			backends: []be{{name: "devicemapper", hasLayers: true}, {name: "overlay2", hasLayers: true}},
			ask:      "auto",
			wantErr:  []string{"/root/devicemapper and /root/overlay2", "choose one explicitly"},
		},
		{
			name:       "an explicit usable name is used even when another home has layers",
			backends:   []be{{name: "devicemapper", hasLayers: true}, {name: "overlay2"}},
			ask:        "overlay2",
			wantName:   "overlay2",
			wantReason: "overlay2: chosen explicitly",
		},
		{
			name:     "an explicit name that cannot run is an error, never a fallback",
			backends: []be{{name: "devicemapper", probeErr: noDM}, {name: "overlay2"}},
			ask:      "devicemapper",
			wantErr:  []string{"devicemapper was requested but cannot run", "no /dev/mapper/control"},
			wantIs:   ErrNotSupported,
		},
		{
			name:     "an unknown name is an error listing the valid names",
			backends: []be{{name: "devicemapper"}, {name: "overlay2"}, {name: "aufs"}},
			ask:      "btrfs",
			wantErr:  []string{`unknown storage driver "btrfs"`, "auto, devicemapper, overlay2, aufs"},
		},
		{
			name:     "no usable backend at all is ErrNotSupported with every reason",
			backends: []be{{name: "devicemapper", probeErr: noDM}, {name: "overlay2", probeErr: errors.Wrap(ErrPrerequisitesMissing, "overlay2: cannot stat root")}},
			ask:      "auto",
			wantErr:  []string{"no storage backend can run", "no /dev/mapper/control", "cannot stat root"},
			wantIs:   ErrNotSupported,
		},
		{
			name:    "no registered backend is ErrNotSupported",
			ask:     "auto",
			wantErr: []string{"no storage backends are registered"},
			wantIs:  ErrNotSupported,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRegistry()
			var opened []string
			for _, b := range c.backends {
				r.register(b.name, fakeBackend{name: b.name, probeErr: b.probeErr, hasLayers: b.hasLayers, opened: &opened})
			}
			d, ch, err := r.selectBackend("/root", c.ask, Options{})
			if c.wantErr != nil {
				if err == nil {
					t.Fatalf("Select(%q) chose %s (%s), want an error", c.ask, ch.Name, ch.Reason)
				}
				for _, s := range c.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not mention %q", err, s)
					}
				}
				if c.wantIs != nil && !errors.Is(err, c.wantIs) {
					t.Errorf("error %q is not %v", err, c.wantIs)
				}
				if len(opened) != 0 {
					t.Errorf("a failed Select opened %v", opened)
				}
				return
			}
			if err != nil {
				t.Fatalf("Select(%q): %v", c.ask, err)
			}
			if ch.Name != c.wantName || d.String() != c.wantName {
				t.Errorf("Select(%q) chose %s (driver %s), want %s", c.ask, ch.Name, d, c.wantName)
			}
			if ch.Home != filepath.Join("/root", c.wantName) || len(opened) != 1 || opened[0] != ch.Home {
				t.Errorf("home %s, opened %v; want /root/%s opened once", ch.Home, opened, c.wantName)
			}
			if !strings.Contains(ch.Reason, c.wantReason) {
				t.Errorf("reason %q, want it to contain %q", ch.Reason, c.wantReason)
			}
		})
	}
}

func TestSelectReportsABackendThatFailsToOpen(t *testing.T) {
	r := newRegistry()
	var opened []string
	r.register("overlay2", fakeBackend{name: "overlay2", newErr: errors.New("disk on fire"), opened: &opened})
	_, _, err := r.selectBackend("/root", "auto", Options{})
	if err == nil || !strings.Contains(err.Error(), "open overlay2 in /root/overlay2: disk on fire") {
		t.Fatalf("error %v, want it to name the backend, its home and the cause", err)
	}
}

func TestRegisterRefusesProgrammingErrors(t *testing.T) {
	cases := []struct {
		name string
		reg  func(r *registry)
	}{
		{"a duplicate name panics", func(r *registry) {
			r.register("x", fakeBackend{})
			r.register("x", fakeBackend{})
		}},
		{"an empty name panics", func(r *registry) { r.register("", fakeBackend{}) }},
		{"the reserved name auto panics", func(r *registry) { r.register("auto", fakeBackend{}) }},
		{"a nil backend panics", func(r *registry) { r.register("y", nil) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			c.reg(newRegistry())
		})
	}
}

func TestBackendsListsAutoOrderFirstThenOthersSorted(t *testing.T) {
	r := newRegistry()
	for _, n := range []string{"zfs", "aufs", "btrfs", "devicemapper"} {
		r.register(n, fakeBackend{})
	}
	if got := strings.Join(r.names(), ","); got != "devicemapper,aufs,btrfs,zfs" {
		t.Errorf("names() = %s", got)
	}
}

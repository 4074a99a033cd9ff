package driver

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pkg/errors"
)

// fakeBackend is a Backend whose answers the test sets; it records the
// roots it was given and every Open and Init.
type fakeBackend struct {
	name     string
	probeErr error
	existing bool
	openErr  error
	calls    *[]string
}

func (f fakeBackend) record(s string) {
	if f.calls != nil {
		*f.calls = append(*f.calls, s)
	}
}

func (f fakeBackend) Probe(string) (string, error) {
	if f.probeErr != nil {
		return "", f.probeErr
	}
	return f.name + " can run here", nil
}

func (f fakeBackend) Existing(root string) (string, bool) {
	if !f.existing {
		return "", false
	}
	return filepath.Join(root, f.name) + " holds state", true
}

func (f fakeBackend) Open(_ context.Context, root string, _ Options) (Driver, error) {
	f.record("open " + f.name + " " + root)
	if f.openErr != nil {
		return nil, f.openErr
	}
	return fakeDriver{f.name}, nil
}

func (f fakeBackend) Init(_ context.Context, root string, _ Options) (Driver, error) {
	f.record("init " + f.name + " " + root)
	return fakeDriver{f.name}, nil
}

// fakeDriver only has a name.
type fakeDriver struct{ name string }

func (f fakeDriver) String() string { return f.name }
func (fakeDriver) Create(context.Context, string, string, *CreateOpts) error {
	return nil
}
func (fakeDriver) CreateReadWrite(context.Context, string, string, *CreateOpts) error {
	return nil
}
func (fakeDriver) Remove(context.Context, string) error                { return nil }
func (fakeDriver) Get(context.Context, string, string) (string, error) { return "", nil }
func (fakeDriver) Put(context.Context, string) error                   { return nil }
func (fakeDriver) Exists(string) bool                                  { return false }
func (fakeDriver) Status() []KV                                        { return nil }
func (fakeDriver) Metadata(string) (map[string]string, error)          { return nil, nil }
func (fakeDriver) Cleanup(context.Context) error                       { return nil }

var noDM = errors.Wrap(ErrNotSupported, "device-mapper is not available (no /dev/mapper/control)")

func TestChoose(t *testing.T) {
	type be struct {
		name     string
		probeErr error
		existing bool
	}
	cases := []struct {
		name       string
		backends   []be
		ask        string
		wantName   string
		wantReason string
		wantInit   bool
		wantErr    []string // substrings of the error
		wantIs     error
	}{
		{
			name:       "auto prefers devicemapper when it is usable",
			backends:   []be{{name: "devicemapper"}, {name: "overlay2"}, {name: "aufs"}},
			ask:        "auto",
			wantName:   "devicemapper",
			wantReason: "devicemapper can run here",
		},
		{
			name:       "auto falls back to overlay2 and says why",
			backends:   []be{{name: "devicemapper", probeErr: noDM}, {name: "overlay2"}, {name: "aufs"}},
			ask:        "",
			wantName:   "overlay2",
			wantReason: "devicemapper unavailable: device-mapper is not available (no /dev/mapper/control)",
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
			wantReason: "devicemapper unavailable: device-mapper is not available (no /dev/mapper/control); overlay2 unavailable: no overlay in /proc/filesystems",
		},
		{
			name:       "existing state wins over a usable backend earlier in the order",
			backends:   []be{{name: "devicemapper"}, {name: "overlay2"}, {name: "aufs", existing: true}},
			ask:        "auto",
			wantName:   "aufs",
			wantReason: "/root/aufs holds state",
			wantInit:   true,
		},
		{
			name:       "existing state of a backend that cannot run is still chosen, never switched away from",
			backends:   []be{{name: "devicemapper", probeErr: noDM, existing: true}, {name: "overlay2"}},
			ask:        "auto",
			wantName:   "devicemapper",
			wantReason: "/root/devicemapper holds state",
			wantInit:   true,
		},
		{
			name:     "two backends with state are an error naming both homes",
			backends: []be{{name: "devicemapper", existing: true}, {name: "overlay2", existing: true}},
			ask:      "auto",
			wantErr:  []string{"/root/devicemapper and /root/overlay2 both exist"},
			wantIs:   ErrInvalidArgument,
		},
		{
			name:       "an explicit name is taken even when another backend has state",
			backends:   []be{{name: "devicemapper", existing: true}, {name: "overlay2"}},
			ask:        "overlay2",
			wantName:   "overlay2",
			wantReason: "named explicitly",
		},
		{
			name:       "an explicit name that cannot run is still taken: Init says why",
			backends:   []be{{name: "devicemapper", probeErr: noDM}, {name: "overlay2"}},
			ask:        "devicemapper",
			wantName:   "devicemapper",
			wantReason: "named explicitly",
		},
		{
			name:     "an unknown name is an error listing the valid names",
			backends: []be{{name: "devicemapper"}, {name: "overlay2"}, {name: "aufs"}},
			ask:      "btrfs",
			wantErr:  []string{`unknown storage driver "btrfs"`, "auto, devicemapper, overlay2, aufs"},
			wantIs:   ErrInvalidArgument,
		},
		{
			name:     "no usable backend at all is ErrNotSupported with every reason",
			backends: []be{{name: "devicemapper", probeErr: noDM}, {name: "overlay2", probeErr: errors.Wrap(ErrPrerequisitesMissing, "overlay2: cannot stat root")}},
			ask:      "auto",
			wantErr:  []string{"no storage driver can run", "no /dev/mapper/control", "overlay2 unavailable: overlay2: cannot stat root"},
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
			var calls []string
			for _, b := range c.backends {
				r.register(b.name, fakeBackend{name: b.name, probeErr: b.probeErr, existing: b.existing, calls: &calls})
			}
			ch, err := r.choose("/root", c.ask)
			if len(calls) != 0 {
				t.Errorf("Choose opened or initialised a backend: %v", calls)
			}
			if c.wantErr != nil {
				if err == nil {
					t.Fatalf("Choose(%q) chose %s (%s), want an error", c.ask, ch.Name, ch.Reason)
				}
				for _, s := range c.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not mention %q", err, s)
					}
				}
				if c.wantIs != nil && !errors.Is(err, c.wantIs) {
					t.Errorf("error %q is not %v", err, c.wantIs)
				}
				return
			}
			if err != nil {
				t.Fatalf("Choose(%q): %v", c.ask, err)
			}
			want := Choice{Name: c.wantName, Root: "/root", Home: filepath.Join("/root", c.wantName), Reason: c.wantReason,
				Explicit: c.ask != "auto" && c.ask != "", Initialized: c.wantInit}
			if ch != want {
				t.Errorf("Choose(%q) = %+v\nwant %+v", c.ask, ch, want)
			}
		})
	}
}

func TestSelectOpensExistingStateAndInitialisesAFreshRoot(t *testing.T) {
	for _, existing := range []bool{false, true} {
		r := newRegistry()
		var calls []string
		r.register("overlay2", fakeBackend{name: "overlay2", existing: existing, calls: &calls})
		ch, err := r.choose("/root", "auto")
		if err != nil {
			t.Fatal(err)
		}
		if existing {
			_, err = r.open(context.Background(), ch, Options{})
		} else {
			_, err = r.init(context.Background(), ch, Options{})
		}
		want := "init overlay2 /root"
		if existing {
			want = "open overlay2 /root"
		}
		if err != nil || len(calls) != 1 || calls[0] != want {
			t.Errorf("existing=%v: calls %v, %v; want [%s]: the backend is given the root, not its home", existing, calls, err, want)
		}
	}
}

func TestOpenAndInitRefuseTheWrongState(t *testing.T) {
	r := newRegistry()
	var calls []string
	r.register("overlay2", fakeBackend{name: "overlay2", calls: &calls})
	r.register("aufs", fakeBackend{name: "aufs", existing: true, calls: &calls})
	ctx := context.Background()
	_, err := r.open(ctx, Choice{Name: "overlay2", Root: "/root", Explicit: true}, Options{})
	if !errors.Is(err, ErrNotInitialized) || !strings.Contains(err.Error(), "overlay2 driver home /root/overlay2") {
		t.Errorf("Open without state = %v, want ErrNotInitialized naming the home", err)
	}
	_, err = r.open(ctx, Choice{Name: "overlay2", Root: "/root"}, Options{})
	if !errors.Is(err, ErrNotInitialized) || !strings.Contains(err.Error(), "no pool or driver home under /root") {
		t.Errorf("Open of an auto choice without state = %v, want ErrNotInitialized naming the root", err)
	}
	_, err = r.init(ctx, Choice{Name: "aufs", Root: "/root"}, Options{})
	if !errors.Is(err, ErrAlreadyInitialized) || !strings.Contains(err.Error(), "/root/aufs") {
		t.Errorf("Init over existing state = %v, want ErrAlreadyInitialized naming the home", err)
	}
	if len(calls) != 0 {
		t.Errorf("refusals reached the backend: %v", calls)
	}
}

func TestOpenPassesTheBackendsErrorThrough(t *testing.T) {
	r := newRegistry()
	r.register("overlay2", fakeBackend{name: "overlay2", existing: true, openErr: errors.New("disk on fire")})
	_, err := r.open(context.Background(), Choice{Name: "overlay2", Root: "/root"}, Options{})
	if err == nil || err.Error() != "disk on fire" {
		t.Fatalf("error %v, want the backend's own", err)
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

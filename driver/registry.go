package driver

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/pkg/errors"
)

// Options configures a backend created through a Backend or Select.
type Options struct {
	// StorageOpt holds driver-wide options; keys are backend specific
	// (for example "size" as the default layer size where supported).
	StorageOpt map[string]string
}

// Backend is how a storage backend makes itself known to Select.
type Backend interface {
	// Probe returns nil when this host can run the backend under root, or an
	// error wrapping ErrNotSupported or ErrPrerequisitesMissing that says why.
	// It must not create or change anything.
	Probe(root string) error
	// HasLayers reports whether home (<root>/<name>) already holds layers.
	HasLayers(home string) bool
	// New opens the backend in home, creating the directory when missing.
	New(home string, opts Options) (Driver, error)
}

// Choice says which backend Select picked and why.
type Choice struct {
	// Name is the backend's registered name.
	Name string
	// Home is the backend's directory, <root>/<name>.
	Home string
	// Reason is a one-line human-readable explanation, shown by
	// `thinctl pool status`.
	Reason string
}

// AutoOrder is the order in which Select tries backends for "auto"; backends
// registered under other names are tried after these, alphabetically.
var AutoOrder = []string{"devicemapper", "overlay2", "aufs"}

// registry holds the registered backends; the package-level functions use
// one shared instance, tests make their own.
type registry struct {
	mu       sync.Mutex
	backends map[string]Backend
}

func newRegistry() *registry { return &registry{backends: map[string]Backend{}} }

var defaultRegistry = newRegistry()

// Register makes backend b available to Select under name. It is meant for
// init functions and panics on an empty name, a nil backend or a name that
// is already registered, as those are programming errors.
func Register(name string, b Backend) { defaultRegistry.register(name, b) }

// Backends lists the registered backend names in the order "auto" tries them.
func Backends() []string { return defaultRegistry.names() }

// Select opens a backend under root. name "auto" or "" picks the backend
// whose home already holds layers (two such homes is an error naming both),
// otherwise the first usable backend in AutoOrder. An explicit name that
// cannot run on this host is an error, never a fallback; an unknown name is
// an error listing the valid names.
func Select(root, name string, opts Options) (Driver, Choice, error) {
	return defaultRegistry.selectBackend(root, name, opts)
}

func (r *registry) register(name string, b Backend) {
	if name == "" || b == nil {
		panic("driver.Register: empty name or nil backend")
	}
	if name == "auto" || strings.ContainsAny(name, "/ ") {
		panic(fmt.Sprintf("driver.Register: invalid backend name %q", name))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.backends[name]; dup {
		panic(fmt.Sprintf("driver.Register: backend %q registered twice", name))
	}
	r.backends[name] = b
}

// names returns the registered names: AutoOrder first, then the rest sorted.
func (r *registry) names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	seen := map[string]bool{}
	for _, n := range AutoOrder {
		if _, ok := r.backends[n]; ok {
			out = append(out, n)
			seen[n] = true
		}
	}
	var rest []string
	for n := range r.backends {
		if !seen[n] {
			rest = append(rest, n)
		}
	}
	sort.Strings(rest)
	return append(out, rest...)
}

func (r *registry) get(name string) Backend {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.backends[name]
}

func (r *registry) selectBackend(root, name string, opts Options) (Driver, Choice, error) {
	names := r.names()
	if name != "" && name != "auto" {
		return r.explicit(root, name, names, opts)
	}
	if len(names) == 0 {
		return nil, Choice{}, errors.Wrap(ErrNotSupported, "no storage backends are registered in this program")
	}
	var holding []string
	for _, n := range names {
		if r.get(n).HasLayers(filepath.Join(root, n)) {
			holding = append(holding, n)
		}
	}
	switch {
	case len(holding) > 1:
		homes := make([]string, len(holding))
		for i, n := range holding {
			homes[i] = filepath.Join(root, n)
		}
		return nil, Choice{}, errors.Errorf("driver homes %s all hold layers; choose one explicitly with --driver (%s) and move or remove the others",
			strings.Join(homes, " and "), strings.Join(holding, ", "))
	case len(holding) == 1:
		n := holding[0]
		home := filepath.Join(root, n)
		if err := r.get(n).Probe(root); err != nil {
			return nil, Choice{}, errors.Wrapf(err, "%s already holds layers but %s cannot run on this host (refusing to switch backends)", home, n)
		}
		return r.open(n, home, opts, fmt.Sprintf("%s: %s already holds layers", n, home))
	}
	var skipped []string
	for _, n := range names {
		if err := r.get(n).Probe(root); err != nil {
			skipped = append(skipped, reasonOf(n, err))
			continue
		}
		reason := fmt.Sprintf("%s: first usable backend", n)
		if len(skipped) > 0 {
			reason = fmt.Sprintf("%s: %s; %s usable", n, strings.Join(skipped, "; "), n)
		}
		return r.open(n, filepath.Join(root, n), opts, reason)
	}
	return nil, Choice{}, errors.Wrapf(ErrNotSupported, "no storage backend can run on this host (%s)", strings.Join(skipped, "; "))
}

func (r *registry) explicit(root, name string, names []string, opts Options) (Driver, Choice, error) {
	b := r.get(name)
	if b == nil {
		return nil, Choice{}, errors.Errorf("unknown storage driver %q; valid names: auto, %s", name, strings.Join(names, ", "))
	}
	if err := b.Probe(root); err != nil {
		return nil, Choice{}, errors.Wrapf(err, "storage driver %s was requested but cannot run on this host", name)
	}
	return r.open(name, filepath.Join(root, name), opts, fmt.Sprintf("%s: chosen explicitly", name))
}

func (r *registry) open(name, home string, opts Options, reason string) (Driver, Choice, error) {
	d, err := r.get(name).New(home, opts)
	if err != nil {
		return nil, Choice{}, errors.Wrapf(err, "open %s in %s", name, home)
	}
	return d, Choice{Name: name, Home: home, Reason: reason}, nil
}

// reasonOf turns backend name's probe error into a short phrase for
// Choice.Reason: it drops the generic sentinel text that ends wrapped errors
// ("...: driver not supported on this host") and names the backend when the
// probe's own message does not.
func reasonOf(name string, err error) string {
	s := err.Error()
	for _, sentinel := range []error{ErrNotSupported, ErrPrerequisitesMissing} {
		s = strings.TrimSuffix(s, ": "+sentinel.Error())
	}
	if s == ErrNotSupported.Error() || s == ErrPrerequisitesMissing.Error() {
		return name + " unavailable"
	}
	if !strings.Contains(s, name) && !(name == "devicemapper" && strings.Contains(s, "device-mapper")) {
		return name + " unavailable (" + s + ")"
	}
	return s
}

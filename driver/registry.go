package driver

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/pkg/errors"
)

// Options configures a backend opened or initialised through Open, Init or
// Select.
type Options struct {
	// StorageOpt holds backend options; keys are backend specific.
	// devicemapper takes Docker's dm.* names (see driver/devicemapper);
	// overlay2 and aufs take none. Sizes are in the units package's grammar.
	StorageOpt map[string]string
	// Progress, when set, is called during long work (formatting the base
	// device, growing a pool, discarding blocks) with the step's name and
	// how much of it is done (0 to 1). It must return quickly.
	Progress func(step string, fraction float64)
	// Debugf, when set, receives one line per kernel operation (ioctl,
	// device, result, duration) for a --debug style log.
	Debugf func(format string, args ...any)
}

// Backend is how a storage backend makes itself known to Choose, Open and
// Init. Its state lives under <root>/<name> (its home); root is what every
// method is given, so the backend alone decides what in it is its own.
type Backend interface {
	// Probe says, without creating or changing anything, whether this host
	// can run the backend under root: a short reason why it can ("the
	// kernel has dm-thin-pool"), or an error matching ErrNotSupported that
	// says why not.
	Probe(root string) (string, error)
	// Existing reports whether root already holds this backend's state
	// and, when it does, describes it for Choice.Reason ("/var/lib/thinctl/
	// devicemapper already holds a thin pool"). It creates nothing.
	Existing(root string) (string, bool)
	// Open opens the backend's existing state under root.
	Open(ctx context.Context, root string, opts Options) (Driver, error)
	// Init creates the backend's state under root and opens it. It checks
	// that the host can run the backend before it writes anything.
	Init(ctx context.Context, root string, opts Options) (Driver, error)
}

// Choice says which backend runs under a root and why; Choose makes one
// without changing anything.
type Choice struct {
	// Name is the backend's registered name.
	Name string
	// Root is the state directory the choice was made for.
	Root string
	// Home is the backend's directory, <root>/<name>.
	Home string
	// Reason is a one-line explanation ("the kernel has dm-thin-pool",
	// "/var/lib/thinctl/overlay2 already exists").
	Reason string
	// Explicit is true when the caller named the backend (not "auto").
	Explicit bool
	// Initialized reports whether the backend's state exists under Root:
	// Open it then, Init it otherwise.
	Initialized bool
}

// AmbiguousError is Choose's refusal when a root holds the state of more
// than one backend and "auto" was asked for.
type AmbiguousError struct {
	// Names are the backends whose state exists, Homes their directories.
	Names, Homes []string
}

func (e *AmbiguousError) Error() string {
	return "cannot choose a storage driver: " + strings.Join(e.Homes, " and ") + " both exist"
}

// Unwrap makes the refusal match ErrInvalidArgument: the caller must name
// one.
func (e *AmbiguousError) Unwrap() error { return ErrInvalidArgument }

// AutoOrder is the order in which "auto" tries backends on a fresh root;
// backends registered under other names are tried after these,
// alphabetically.
var AutoOrder = []string{"devicemapper", "overlay2", "aufs"}

// registry holds the registered backends; the package-level functions use
// one shared instance, tests make their own.
type registry struct {
	mu       sync.Mutex
	backends map[string]Backend
}

func newRegistry() *registry { return &registry{backends: map[string]Backend{}} }

var defaultRegistry = newRegistry()

// Register makes backend b available under name. It is meant for init
// functions (importing a backend's package registers it and does nothing
// else) and panics on an empty or reserved name, a nil backend or a name
// that is already registered, as those are programming errors.
func Register(name string, b Backend) { defaultRegistry.register(name, b) }

// Backends lists the registered backend names in the order "auto" tries them.
func Backends() []string { return defaultRegistry.names() }

// Choose decides which backend runs under root, changing nothing. An
// explicit name is taken as is (an unknown one is an error listing the
// valid names). "auto" (or "") keeps the backend whose state root already
// holds, so a host never silently switches backends (two of them is an
// *AmbiguousError); on a fresh root it takes the first backend in
// AutoOrder whose probe passes, and fails with ErrNotSupported saying why
// each was skipped when none does.
func Choose(root, name string) (Choice, error) { return defaultRegistry.choose(root, name) }

// Open opens the backend c names. It fails with ErrNotInitialized when its
// state does not exist (see Init).
func Open(ctx context.Context, c Choice, opts Options) (Driver, error) {
	return defaultRegistry.open(ctx, c, opts)
}

// Init creates the state of the backend c names and opens it. It fails
// with ErrAlreadyInitialized when the state exists.
func Init(ctx context.Context, c Choice, opts Options) (Driver, error) {
	return defaultRegistry.init(ctx, c, opts)
}

// Select is Choose followed by Open, or by Init on a root that holds no
// state yet: the one call an embedder needs.
func Select(ctx context.Context, root, name string, opts Options) (Driver, Choice, error) {
	c, err := Choose(root, name)
	if err != nil {
		return nil, c, err
	}
	var d Driver
	if c.Initialized {
		d, err = Open(ctx, c, opts)
	} else {
		d, err = Init(ctx, c, opts)
	}
	return d, c, err
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

func (r *registry) lookup(name string) (Backend, error) {
	if b := r.get(name); b != nil {
		return b, nil
	}
	return nil, errors.Wrapf(ErrInvalidArgument, "unknown storage driver %q; valid names: auto, %s",
		name, strings.Join(r.names(), ", "))
}

func (r *registry) choose(root, name string) (Choice, error) {
	if name != "" && name != "auto" {
		b, err := r.lookup(name)
		if err != nil {
			return Choice{}, err
		}
		_, exists := b.Existing(root)
		return Choice{Name: name, Root: root, Home: filepath.Join(root, name), Reason: "named explicitly",
			Explicit: true, Initialized: exists}, nil
	}
	names := r.names()
	if len(names) == 0 {
		return Choice{}, errors.Wrap(ErrNotSupported, "no storage backends are registered in this program")
	}
	var found []Choice
	for _, n := range names {
		if desc, ok := r.get(n).Existing(root); ok {
			found = append(found, Choice{Name: n, Root: root, Home: filepath.Join(root, n), Reason: desc, Initialized: true})
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
	default:
		amb := &AmbiguousError{}
		for _, c := range found {
			amb.Names = append(amb.Names, c.Name)
			amb.Homes = append(amb.Homes, c.Home)
		}
		return Choice{}, amb
	}
	var skipped []string
	for _, n := range names {
		why, err := r.get(n).Probe(root)
		if err != nil {
			skipped = append(skipped, n+" unavailable: "+shortReason(err))
			continue
		}
		if len(skipped) > 0 {
			why = strings.Join(skipped, "; ")
		}
		return Choice{Name: n, Root: root, Home: filepath.Join(root, n), Reason: why}, nil
	}
	return Choice{}, errors.Wrapf(ErrNotSupported, "no storage driver can run on this host (%s)", strings.Join(skipped, "; "))
}

func (r *registry) open(ctx context.Context, c Choice, opts Options) (Driver, error) {
	b, err := r.lookup(c.Name)
	if err != nil {
		return nil, err
	}
	if _, ok := b.Existing(c.Root); !ok {
		if !c.Explicit {
			return nil, errors.Wrapf(ErrNotInitialized, "no pool or driver home under %s", c.Root)
		}
		return nil, errors.Wrapf(ErrNotInitialized, "%s driver home %s", c.Name, filepath.Join(c.Root, c.Name))
	}
	return b.Open(ctx, c.Root, opts)
}

func (r *registry) init(ctx context.Context, c Choice, opts Options) (Driver, error) {
	b, err := r.lookup(c.Name)
	if err != nil {
		return nil, err
	}
	if _, ok := b.Existing(c.Root); ok {
		return nil, errors.Wrapf(ErrAlreadyInitialized, "%s", filepath.Join(c.Root, c.Name))
	}
	return b.Init(ctx, c.Root, opts)
}

// shortReason is a probe error's message without the class text that ends
// wrapped errors ("...: not supported").
func shortReason(err error) string {
	s := strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
	for _, sentinel := range []error{ErrNotSupported, ErrPrerequisitesMissing} {
		s = strings.TrimSuffix(s, ": "+sentinel.Error())
	}
	return s
}

package failpoint

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pkg/errors"
)

// Env is the environment variable read once at start-up.
const Env = "THINCTL_FAILPOINTS"

// ErrInjected is what InjectErr returns (wrapped with the point's name)
// for a point armed with the error action.
var ErrInjected = errors.New("failpoint: injected error")

// Kind is what an armed point does.
type Kind string

// The actions.
const (
	Kill  Kind = "kill"
	Panic Kind = "panic"
	Error Kind = "error"
	Sleep Kind = "sleep"
	Stop  Kind = "stop"
)

// Action is one armed point's behaviour.
type Action struct {
	Kind Kind
	// Delay is the sleep action's duration.
	Delay time.Duration
	// Nth, when above zero, fires the action on the Nth hit only.
	Nth int64
}

// armed is one point's action and hit counter.
type armed struct {
	Action
	hits atomic.Int64
}

// config is nil when no point is armed: Inject is then one atomic load.
var config atomic.Pointer[map[string]*armed]

// envErr keeps why THINCTL_FAILPOINTS could not be used.
var envErr error

func init() {
	if spec := os.Getenv(Env); spec != "" {
		envErr = Enable(spec)
	}
}

// EnvError returns the error from parsing THINCTL_FAILPOINTS at start-up,
// or nil (also when the variable is unset). No point is armed after an
// error.
func EnvError() error { return envErr }

// Parse reads a THINCTL_FAILPOINTS value (see the package documentation)
// into a map from point name to action. Unknown points, unknown actions
// and bad counts are errors naming the entry.
func Parse(spec string) (map[string]Action, error) {
	out := map[string]Action{}
	for _, entry := range strings.FieldsFunc(spec, func(r rune) bool { return r == ';' || r == ',' }) {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		name, act, ok := strings.Cut(entry, "=")
		if !ok {
			return nil, errors.Errorf("failpoint %q: want <point>=<action>", entry)
		}
		if !Known(name) {
			return nil, errors.Errorf("failpoint %q: unknown point (see failpoint.Points)", name)
		}
		a, err := parseAction(act)
		if err != nil {
			return nil, errors.Wrapf(err, "failpoint %q", entry)
		}
		out[name] = a
	}
	return out, nil
}

func parseAction(s string) (Action, error) {
	var a Action
	if body, n, ok := strings.Cut(s, "@"); ok {
		nth, err := strconv.ParseInt(n, 10, 64)
		if err != nil || nth < 1 {
			return a, errors.Errorf("hit count %q: want a whole number from 1", n)
		}
		s, a.Nth = body, nth
	}
	kind, arg, hasArg := strings.Cut(s, ":")
	a.Kind = Kind(kind)
	switch a.Kind {
	case Kill, Panic, Error, Stop:
		if hasArg {
			return a, errors.Errorf("action %q takes no argument", kind)
		}
	case Sleep:
		d, err := time.ParseDuration(arg)
		if err != nil || d < 0 {
			return a, errors.Errorf("sleep %q: want a duration such as sleep:2s", arg)
		}
		a.Delay = d
	default:
		return a, errors.Errorf("unknown action %q (kill, panic, error, sleep:DUR, stop)", kind)
	}
	return a, nil
}

// Enable arms the points in spec, replacing whatever was armed. An empty
// spec disarms everything.
func Enable(spec string) error {
	m, err := Parse(spec)
	if err != nil {
		return err
	}
	if len(m) == 0 {
		config.Store(nil)
		return nil
	}
	cfg := make(map[string]*armed, len(m))
	for k, a := range m {
		cfg[k] = &armed{Action: a}
	}
	config.Store(&cfg)
	return nil
}

// Disable disarms every point.
func Disable() { config.Store(nil) }

// Enabled reports whether any point is armed.
func Enabled() bool { return config.Load() != nil }

// Inject runs the action armed at name, if any. The error action does
// nothing here; use InjectErr where the caller can fail.
func Inject(name string) {
	if cfg := config.Load(); cfg != nil {
		_ = fire(*cfg, name)
	}
}

// InjectErr is Inject for steps that can fail: a point armed with the
// error action returns an error wrapping ErrInjected.
func InjectErr(name string) error {
	if cfg := config.Load(); cfg != nil {
		return fire(*cfg, name)
	}
	return nil
}

// fire performs the armed action of name; it returns only for the error,
// sleep and stop actions (stop returns once the process is continued).
func fire(cfg map[string]*armed, name string) error {
	a := cfg[name]
	if a == nil {
		return nil
	}
	if n := a.hits.Add(1); a.Nth > 0 && n != a.Nth {
		return nil
	}
	switch a.Kind {
	case Kill:
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // SIGKILL is delivered before the process runs on
	case Panic:
		panic("failpoint " + name)
	case Error:
		return errors.Wrapf(ErrInjected, "at %s", name)
	case Sleep:
		time.Sleep(a.Delay)
	case Stop:
		stopThisThread()
	}
	return nil
}

// stopThisThread stops the process from the thread that reached the point.
// A process-directed SIGSTOP (kill) is taken by whichever thread the kernel
// picks, and the thread at the point runs on until the group stop reaches
// it: the command could finish, or pass further steps, first. A
// thread-directed one (tgkill) to this very thread stops it before tgkill
// returns; the goroutine is locked to its thread so that the thread id
// stays its own.
func stopThisThread() {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	_ = syscall.Tgkill(os.Getpid(), syscall.Gettid(), syscall.SIGSTOP)
}

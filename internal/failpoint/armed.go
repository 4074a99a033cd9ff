//go:build failpoints

package failpoint

import (
	"os"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pkg/errors"
)

// Compiled reports whether this binary was built with the failpoints tag,
// that is whether points can be armed at all.
const Compiled = true

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

// Enable arms the points in spec, replacing whatever was armed. An empty
// spec disarms everything. A spec that does not parse changes nothing.
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

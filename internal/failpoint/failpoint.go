package failpoint

import (
	"strconv"
	"strings"
	"time"

	"github.com/pkg/errors"
)

// Env is the environment variable a binary built with the failpoints tag
// reads once at start-up. Without the tag nothing reads it.
const Env = "THINCTL_FAILPOINTS"

// ErrInjected is what InjectErr returns (wrapped with the point's name)
// for a point armed with the error action.
var ErrInjected = errors.New("failpoint: injected error")

// ErrNotCompiled is what Enable returns for a spec that arms a point in a
// binary built without the failpoints tag.
var ErrNotCompiled = errors.New("failpoint: this binary was built without failpoints (build it with -tags failpoints)")

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

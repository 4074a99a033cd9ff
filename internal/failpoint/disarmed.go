//go:build !failpoints

package failpoint

import "github.com/pkg/errors"

// Compiled reports whether this binary was built with the failpoints tag,
// that is whether points can be armed at all.
const Compiled = false

// EnvError returns nil: without the failpoints tag nothing reads
// THINCTL_FAILPOINTS.
func EnvError() error { return nil }

// Enable checks spec and, when it names any point, returns an error
// wrapping ErrNotCompiled: without the failpoints tag no point can be
// armed. An empty spec (disarm everything) succeeds.
func Enable(spec string) error {
	m, err := Parse(spec)
	if err != nil {
		return err
	}
	if len(m) > 0 {
		return errors.Wrapf(ErrNotCompiled, "arm %q", spec)
	}
	return nil
}

// Disable does nothing: no point is ever armed.
func Disable() {}

// Enabled reports false: no point is ever armed.
func Enabled() bool { return false }

// Inject does nothing; the compiler drops the call.
func Inject(string) {}

// InjectErr returns nil; the compiler drops the call.
func InjectErr(string) error { return nil }

package errdefs

import (
	"fmt"

	"github.com/pkg/errors"
)

// Wrapf is errors.Wrapf(class, format, args...) that keeps cause as well:
// errors.Is (and errors.As) find both class and cause in the result, where
// "%v" of cause in a wrapped class keeps only its text. The message is
// errors.Wrapf's; name the cause in format where the reader needs it:
//
//	errdefs.Wrapf(ErrRegistryCorrupt, err, "%s: %v", path, err)
//	// errors.Is(e, ErrRegistryCorrupt) and errors.Is(e, fs.ErrNotExist)
//
// A nil cause gives errors.Wrapf's result.
func Wrapf(class, cause error, format string, args ...any) error {
	w := errors.Wrapf(class, format, args...)
	if cause == nil {
		return w
	}
	return &causedError{error: w, cause: cause}
}

// causedError is a wrapped class with the cause behind it.
type causedError struct {
	error       // the class, wrapped with the message (and a stack)
	cause error // what made it happen
}

// Unwrap gives errors.Is and errors.As both branches: the class first.
func (e *causedError) Unwrap() []error { return []error{e.error, e.cause} }

// Format prints as the wrapped class does (%+v adds its stack).
func (e *causedError) Format(s fmt.State, verb rune) {
	if f, ok := e.error.(fmt.Formatter); ok {
		f.Format(s, verb)
		return
	}
	fmt.Fprintf(s, fmt.FormatString(s, verb), e.error)
}

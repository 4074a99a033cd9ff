package health

import "github.com/pkg/errors"

// Error is a refusal because the pool is not healthy. errors.Is
// matches the class of every problem it carries (ErrPoolReadOnly,
// ErrLowSpace, ErrHostFilesystemFull); errors.As gives the problems in
// the order they have to be fixed (the host filesystem first).
type Error struct {
	Problems []Problem
	// NotKept is the pool message the pool accepted but did not keep
	// ("" for a refusal before anything was sent); the error then also
	// matches ErrPoolNotKept.
	NotKept string
}

// Error names the message the pool did not keep, if any, then each
// problem's cause.
func (e *Error) Error() string {
	s := ""
	if e.NotKept != "" {
		s = "the pool accepted \"" + e.NotKept + "\" but did not keep it: "
	}
	for i, hp := range e.Problems {
		if i > 0 {
			s += "; "
		}
		s += hp.Cause
	}
	return s
}

// Is matches the class of any of the problems.
func (e *Error) Is(target error) bool {
	if e.NotKept != "" && (target == ErrPoolNotKept || target == ErrPoolReadOnly) {
		return true
	}
	for _, hp := range e.Problems {
		if errors.Is(hp.Class, target) {
			return true
		}
	}
	return false
}

// Fixes lists the fixes in the order they apply, without repeats.
func (e *Error) Fixes() []Fix {
	var out []Fix
	seen := map[Fix]bool{}
	for _, hp := range e.Problems {
		if !seen[hp.Fix] {
			seen[hp.Fix] = true
			out = append(out, hp.Fix)
		}
	}
	return out
}

// Refusal is the *Error a write refuses with, nil when nothing
// stops writes: a short host filesystem alone does not (the pool may
// never fill what it promised) but is named with any problem that does.
func (h Health) Refusal() error {
	blocking := false
	for _, hp := range h.Problems {
		if hp.Kind != ProblemHostFilesystem {
			blocking = true
		}
	}
	if !blocking {
		return nil
	}
	return &Error{Problems: h.Problems}
}

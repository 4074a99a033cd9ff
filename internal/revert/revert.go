// Package revert undoes the steps of a multi-step operation that stopped
// part way: each step that made something pushes how to undo it, and
// unless the operation reaches its end (Keep), the undos run newest first.
//
//	var undo revert.Stack
//	defer undo.Unwind()
//	if err := makeA(); err != nil {
//		return err
//	}
//	undo.Push(removeA)
//	if err := makeB(); err != nil {
//		return err // removeA runs
//	}
//	undo.Keep() // A and B stay
//
// An undo that must run on every path (a device suspended only for the
// operation's message) is pushed with PushAlways; its error is reported by
// Unwind.
package revert

import "github.com/pkg/errors"

// Stack holds the undos of one operation. The zero value is ready; it is
// not safe for concurrent use.
type Stack struct {
	steps []step
	kept  bool
}

type step struct {
	undo   func() error
	always bool
}

// Push adds the undo of a step that succeeded; it runs unless Keep is
// called first.
func (s *Stack) Push(undo func()) {
	s.steps = append(s.steps, step{undo: func() error { undo(); return nil }})
}

// PushAlways adds an undo that runs even after Keep (the end of something
// the operation only needed for a while); Unwind returns its error.
func (s *Stack) PushAlways(undo func() error) {
	s.steps = append(s.steps, step{undo: undo, always: true})
}

// Keep says the operation reached its end: what it made stays, and only
// the PushAlways undos run.
func (s *Stack) Keep() { s.kept = true }

// Unwind runs the undos, newest first (after Keep only the PushAlways
// ones), once, and returns the first error of a PushAlways undo with the
// others' counted in its message. Later calls do nothing.
func (s *Stack) Unwind() error {
	var first error
	failed := 0
	for i := len(s.steps) - 1; i >= 0; i-- {
		st := s.steps[i]
		if s.kept && !st.always {
			continue
		}
		if err := st.undo(); err != nil {
			if first == nil {
				first = err
			}
			failed++
		}
	}
	s.steps = nil
	if failed > 1 {
		return errors.Wrapf(first, "and %d more undo steps failed", failed-1)
	}
	return first
}

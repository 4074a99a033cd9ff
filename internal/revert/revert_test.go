package revert

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestUndosRunNewestFirstUnlessKept(t *testing.T) {
	var ran []string
	op := func(fail bool) {
		var s Stack
		defer s.Unwind()
		s.Push(func() { ran = append(ran, "a") })
		s.Push(func() { ran = append(ran, "b") })
		if fail {
			return
		}
		s.Keep()
	}
	op(true)
	if want := []string{"b", "a"}; !reflect.DeepEqual(ran, want) {
		t.Fatalf("a failed operation ran %v, want %v", ran, want)
	}
	ran = nil
	op(false)
	if len(ran) != 0 {
		t.Fatalf("a kept operation ran %v", ran)
	}
}

func TestAnAlwaysUndoRunsAfterKeepAndReportsItsError(t *testing.T) {
	var ran []string
	resume := errors.New("resume failed")
	var s Stack
	s.Push(func() { ran = append(ran, "remove") })
	s.PushAlways(func() error { ran = append(ran, "resume"); return resume })
	s.Keep()
	if err := s.Unwind(); !errors.Is(err, resume) {
		t.Fatalf("Unwind = %v, want the resume's error", err)
	}
	if want := []string{"resume"}; !reflect.DeepEqual(ran, want) {
		t.Fatalf("ran %v, want %v", ran, want)
	}
	if err := s.Unwind(); err != nil || len(ran) != 1 {
		t.Fatalf("a second Unwind ran again: %v, %v", err, ran)
	}
}

func TestSeveralFailedUndosAreCounted(t *testing.T) {
	first, second := errors.New("first"), errors.New("second")
	var s Stack
	s.PushAlways(func() error { return first })
	s.PushAlways(func() error { return second })
	err := s.Unwind()
	if !errors.Is(err, second) || !strings.Contains(err.Error(), "and 1 more undo steps failed") {
		t.Fatalf("Unwind = %v, want the newest step's error and a count of the other", err)
	}
}

package errdefs_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/thinctl/thinctl/errdefs"
)

func TestASentinelMatchesItselfAndItsClassOnly(t *testing.T) {
	gone := errdefs.New("device not found", errdefs.ErrNotFound)
	err := fmt.Errorf("remove %q: %w", "web", gone)
	if !errors.Is(err, gone) || !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("%v does not match its sentinel and class", err)
	}
	if errors.Is(err, errdefs.ErrExists) {
		t.Fatalf("%v matches another class", err)
	}
	if errors.Is(errdefs.ErrNotFound, gone) {
		t.Fatal("a class matches one of its sentinels")
	}
	if got := err.Error(); got != `remove "web": device not found` {
		t.Fatalf("message %q", got)
	}
}

func TestTwoSentinelsOfOneClassAreDistinct(t *testing.T) {
	a := errdefs.New("a", errdefs.ErrBusy)
	b := errdefs.New("a", errdefs.ErrBusy)
	if errors.Is(a, b) || errors.Is(b, a) {
		t.Fatal("distinct sentinels match each other")
	}
	if errors.Is(errdefs.New("plain", nil), errdefs.ErrBusy) {
		t.Fatal("a sentinel without a class matches one")
	}
}

func ExampleNew() {
	errDeviceGone := errdefs.New("device not found", errdefs.ErrNotFound)
	err := fmt.Errorf("mount %q: %w", "web", errDeviceGone)
	fmt.Println(errors.Is(err, errDeviceGone), errors.Is(err, errdefs.ErrNotFound))
	// Output: true true
}

func TestWrapfKeepsBothTheClassAndTheCause(t *testing.T) {
	corrupt := errdefs.New("registry is unreadable", errdefs.ErrCorrupt)
	_, cause := os.ReadFile(filepath.Join(t.TempDir(), "journal"))
	err := errdefs.Wrapf(corrupt, cause, "%s: %v", "journal", cause)
	err = fmt.Errorf("open: %w", err)
	for _, want := range []error{corrupt, errdefs.ErrCorrupt, fs.ErrNotExist, cause} {
		if !errors.Is(err, want) {
			t.Errorf("%v does not match %v", err, want)
		}
	}
	if errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("%v matches a class it was not given", err)
	}
	var pe *fs.PathError
	if !errors.As(err, &pe) || pe.Op != "open" {
		t.Errorf("errors.As does not find the cause's *fs.PathError in %v", err)
	}
	want := "open: journal: " + cause.Error() + ": registry is unreadable"
	if got := err.Error(); got != want {
		t.Errorf("message %q, want %q (errors.Wrapf's)", got, want)
	}
	if got := fmt.Sprintf("%v", errdefs.Wrapf(corrupt, cause, "x")); got != "x: registry is unreadable" {
		t.Errorf("%%v prints %q", got)
	}
	if errdefs.Wrapf(corrupt, nil, "x").Error() != "x: registry is unreadable" {
		t.Error("a nil cause changes the message")
	}
}

package errdefs_test

import (
	"errors"
	"fmt"
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

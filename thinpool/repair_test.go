package thinpool

import (
	"context"
	"errors"
	"testing"
)

func TestFsckRefusesAnIDThatEscapesTheRoot(t *testing.T) {
	for _, id := range []string{"../etc", "a/b", "", ".."} {
		if _, err := (&Pool{}).Fsck(context.Background(), id); !errors.Is(err, ErrInvalidID) {
			t.Errorf("Fsck(%q) = %v, want ErrInvalidID", id, err)
		}
	}
}

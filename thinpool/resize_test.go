package thinpool

import (
	"context"
	"testing"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/dm"
)

// A size that is no whole number of sectors is refused before the pool is
// touched (the zero Pool has no store, lock or device-mapper client).
func TestResizeRefusesSizesThatAreNoWholeNumberOfSectorsBeforeTouchingAnything(t *testing.T) {
	for _, size := range []uint64{0, 1, 511, 513, 1<<30 + 100, ^uint64(0)} {
		if err := (&Pool{}).Resize(context.Background(), "d", size, ResizeOptions{}); !isInvalidSize(err) {
			t.Errorf("Resize to %d: %v, want ErrInvalidSize", size, err)
		}
	}
}

func isInvalidSize(err error) bool { return err != nil && errors.Is(err, ErrInvalidSize) }

func TestATablesLengthIsTheEndOfItsLastTarget(t *testing.T) {
	for _, c := range []struct {
		ts   []dm.Target
		want uint64
	}{
		{nil, 0},
		{[]dm.Target{{Start: 0, Length: 2048}}, 2048},
		{[]dm.Target{{Start: 0, Length: 100}, {Start: 100, Length: 28}}, 128},
	} {
		if got := tableLength(c.ts); got != c.want {
			t.Errorf("tableLength(%v) = %d, want %d", c.ts, got, c.want)
		}
	}
}

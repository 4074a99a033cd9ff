package thinpool

import (
	"context"
	"errors"
	"testing"

	"github.com/thinctl/thinctl/dm"
)

func TestRetryBusyTriesAgainOnlyWhileTheRefusalIsAPassingWindow(t *testing.T) {
	busyThen := func(n int, calls *int) func() error {
		return func() error {
			if *calls++; *calls <= n {
				return dm.ErrBusy
			}
			return nil
		}
	}
	always := func() bool { return true }
	t.Run("a window that closes is waited out", func(t *testing.T) {
		calls := 0
		if err := retryBusy(context.Background(), busyThen(3, &calls), always); err != nil || calls != 4 {
			t.Fatalf("retryBusy = %v after %d calls, want nil after 4", err, calls)
		}
	})
	t.Run("a holder (no passing window) is not waited for", func(t *testing.T) {
		calls := 0
		err := retryBusy(context.Background(), busyThen(3, &calls), func() bool { return false })
		if !errors.Is(err, dm.ErrBusy) || calls != 1 {
			t.Fatalf("retryBusy = %v after %d calls, want dm.ErrBusy after 1", err, calls)
		}
	})
	t.Run("another error ends it at once", func(t *testing.T) {
		calls := 0
		gone := errors.New("gone")
		err := retryBusy(context.Background(), func() error { calls++; return gone }, always)
		if !errors.Is(err, gone) || calls != 1 {
			t.Fatalf("retryBusy = %v after %d calls, want gone after 1", err, calls)
		}
	})
	t.Run("a window that stays open ends after about two seconds of pauses", func(t *testing.T) {
		calls := 0
		err := retryBusy(context.Background(), busyThen(1<<30, &calls), always)
		if !errors.Is(err, dm.ErrBusy) || calls != 12 { // pauses of 1, 2, 4 ... 1024 ms: about 2 s
			t.Fatalf("retryBusy = %v after %d calls, want dm.ErrBusy after 12", err, calls)
		}
	})
	t.Run("its context ends it during a pause", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		calls := 0
		err := retryBusy(ctx, func() error { calls++; cancel(); return dm.ErrBusy }, always)
		if !errors.Is(err, context.Canceled) || calls != 1 {
			t.Fatalf("retryBusy = %v after %d calls, want context.Canceled after 1", err, calls)
		}
	})
}

//go:build vm

package dm

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestWaitEventWakesWhenAThinPoolCrossesItsLowWaterMark(t *testing.T) {
	c := vmClient(t)
	t.Run("with DM_DEV_ARM_POLL", func(t *testing.T) { lowWaterEvent(t, c) })
	t.Run("with the polling fallback", func(t *testing.T) {
		c2, err := open(controlNode)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c2.Close() }) // registered first: runs after the devices' cleanups
		c2.noArmPoll = true
		lowWaterEvent(t, c2)
	})
}

// lowWaterEvent writes into a thin device of a 128-block pool whose low
// water mark is 120 free blocks until WaitEvent returns.
func lowWaterEvent(t *testing.T, c *Client) {
	pool, _ := thinPool(t, c, 8<<20, 120)
	thin, _ := thinDevice(t, c, pool, 1, 16384)
	before := mustInfo(t, c, pool).EventNr

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	type result struct {
		nr  uint32
		err error
	}
	done := make(chan result, 1)
	go func() {
		nr, err := c.WaitEvent(ctx, pool, before)
		done <- result{nr, err}
	}()

	fd, err := unix.Open(NodePath(thin), unix.O_WRONLY|unix.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	chunk, err := unix.Mmap(-1, 0, 64<<10, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(chunk)
	for i := range chunk {
		chunk[i] = byte(i)
	}
	written := 0
	for off := int64(0); off < 8<<20; off += int64(len(chunk)) {
		select {
		case r := <-done:
			checkLowWater(t, c, pool, before, r.nr, r.err, written)
			return
		default:
		}
		if _, err := unix.Pwrite(fd, chunk, off); err != nil {
			t.Fatalf("write at %d: %v", off, err)
		}
		written++
	}
	select {
	case r := <-done:
		checkLowWater(t, c, pool, before, r.nr, r.err, written)
	case <-ctx.Done():
		t.Fatalf("no event after filling the thin device (%d blocks); pool status %v", written, statusOf(t, c, pool))
	}
}

func checkLowWater(t *testing.T, c *Client, pool string, before, nr uint32, err error, written int) {
	t.Helper()
	if err != nil {
		t.Fatalf("WaitEvent: %v", err)
	}
	if nr == before {
		t.Fatalf("WaitEvent returned the old event number %d", nr)
	}
	if written < 8 {
		t.Errorf("the event came after only %d blocks were written; low water is 8 blocks in", written)
	}
	t.Logf("event %d -> %d after %d blocks written; pool status %v", before, nr, written, statusOf(t, c, pool))
}

func statusOf(t *testing.T, c *Client, name string) string {
	st, err := c.Status(name, StatusOptions{})
	if err != nil {
		return err.Error()
	}
	return formatTable(st)
}

func TestWaitEventReturnsPromptlyWhenItsContextIsCancelled(t *testing.T) {
	c := vmClient(t)
	name := devName(t)
	info := activate(t, c, name, []Target{{Start: 0, Length: 2048, Type: "zero"}}, LoadOptions{})
	base := runtime.NumGoroutine()
	for _, fallback := range []bool{false, true} {
		cc := c
		if fallback {
			c2, err := open(controlNode)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c2.Close() })
			c2.noArmPoll = true
			cc = c2
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		start := time.Now()
		_, err := cc.WaitEvent(ctx, name, info.EventNr)
		took := time.Since(start)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("fallback=%v: WaitEvent = %v, want DeadlineExceeded", fallback, err)
		}
		if took > 3*time.Second {
			t.Errorf("fallback=%v: WaitEvent took %v to notice its deadline", fallback, took)
		}
	}
	if !eventually(2*time.Second, func() bool { return runtime.NumGoroutine() <= base }) {
		t.Errorf("%d goroutines after WaitEvent returned, %d before", runtime.NumGoroutine(), base)
	}
	if _, err := c.WaitEvent(context.Background(), name, info.EventNr+1); err != nil {
		t.Fatalf("WaitEvent with a stale event number should return at once: %v", err)
	}
}

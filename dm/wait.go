package dm

import (
	"context"
	"sync"
	"time"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"
)

// WaitEvent blocks until the device's event number differs from eventNr or
// ctx is done, and returns the new event number. Targets raise events when
// something needs attention (a thin pool crossing its low-water mark, a
// table swap, ...). Read the current number from Info first, then wait:
//
//	info, _ := c.Info(name)
//	// ... check the state ...
//	nr, err := c.WaitEvent(ctx, name, info.EventNr)
//
// On kernels with DM_DEV_ARM_POLL (ioctl 4.37) it sleeps in poll(2) on a
// control fd of its own, woken by any device-mapper event and by ctx. Older
// kernels only offer DM_DEV_WAIT, which cannot be interrupted; there
// WaitEvent polls Info with a growing interval (at most 500 ms) instead, so
// cancellation never leaves a goroutine blocked in the kernel.
func (c *Client) WaitEvent(ctx context.Context, name string, eventNr uint32) (uint32, error) {
	if err := ValidateName(name); err != nil {
		return 0, err
	}
	if c.version.atLeast(minorArmPoll) && !c.noArmPoll {
		return c.waitArmPoll(ctx, name, eventNr)
	}
	return c.waitPolling(ctx, name, eventNr)
}

// changed returns the device's event number and whether it moved.
func (c *Client) changed(name string, eventNr uint32) (uint32, bool, error) {
	info, err := c.Info(name)
	if err != nil {
		return 0, false, err
	}
	return info.EventNr, info.EventNr != eventNr, nil
}

func (c *Client) waitArmPoll(ctx context.Context, name string, eventNr uint32) (uint32, error) {
	fd, err := unix.Open(c.controlPath, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, controlError(c.controlPath, err)
	}
	defer unix.Close(fd)

	// A pipe turns ctx.Done into something poll(2) sees. The helper
	// goroutine ends before the pipe is closed.
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return 0, errors.Wrap(err, "dm: wait: pipe")
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-ctx.Done():
			_, _ = unix.Write(p[1], []byte{0})
		case <-done:
		}
	}()
	defer wg.Wait()
	defer close(done)

	arm := request{global: true}
	for {
		// Arm first, then look: an event between the two still wakes poll.
		if _, err := c.runOn(fd, "arm poll", unix.DM_DEV_ARM_POLL, arm); err != nil {
			return 0, err
		}
		nr, moved, err := c.changed(name, eventNr)
		if err != nil || moved {
			return nr, err
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}, {Fd: int32(p[0]), Events: unix.POLLIN}}
		// The timeout is only a safety net; events and ctx wake poll.
		if _, err := unix.Poll(fds, 5000); err != nil && err != unix.EINTR {
			return 0, errors.Wrap(err, "dm: wait: poll")
		}
		if fds[1].Revents != 0 {
			return 0, ctx.Err()
		}
	}
}

func (c *Client) waitPolling(ctx context.Context, name string, eventNr uint32) (uint32, error) {
	sleep := 10 * time.Millisecond
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-t.C:
		}
		nr, moved, err := c.changed(name, eventNr)
		if err != nil || moved {
			return nr, err
		}
		t.Reset(sleep)
		if sleep < 500*time.Millisecond {
			sleep *= 2
		}
	}
}

//go:build vm

package dm

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thinctl/thinctl/internal/testenv"
	"golang.org/x/sys/unix"
)

// Clients from Open share nothing: each has its own logger, closing one
// leaves the others working, and Close of the Default client does nothing.
func TestOpenedClientsAreIndependent(t *testing.T) {
	testenv.RequireDeviceMapper(t)
	var mu sync.Mutex
	var lines []string
	logged, err := Open(Options{Logger: func(format string, args ...any) {
		mu.Lock()
		lines = append(lines, fmt.Sprintf(format, args...))
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	quiet, err := Open(Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { quiet.Close() }) // after the device's own cleanup

	name := devName(t)
	activate(t, quiet, name, []Target{{Start: 0, Length: 2048, Type: "zero"}}, LoadOptions{})
	mu.Lock()
	n := len(lines)
	mu.Unlock()
	if n != 0 {
		t.Fatalf("the quiet client's operations reached the other client's logger: %q", lines)
	}
	if _, err := logged.Info(name); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	got := strings.Join(lines, "\n")
	mu.Unlock()
	if !strings.Contains(got, name) {
		t.Fatalf("the logging client's Info was not logged: %q", got)
	}

	if err := logged.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := logged.Info(name); !errors.Is(err, unix.EBADF) {
		t.Fatalf("Info on a closed client = %v, want EBADF", err)
	}
	if _, err := quiet.Info(name); err != nil {
		t.Fatalf("closing one client broke another: %v", err)
	}
	d, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Info(name); err != nil {
		t.Fatalf("Close of the Default client broke it for everyone: %v", err)
	}
}

// With udev running, Resume waits for udev's /dev/mapper node; an ended
// context cuts that wait short (the device is live all the same) instead of
// holding the caller for up to the udev timeout.
func TestTheWaitForUdevEndsWithTheContext(t *testing.T) {
	c := vmClient(t)
	if !c.UdevRunning() {
		t.Skip("udev is not running: nodes are made by the client, nothing is waited for")
	}
	slow, err := Open(Options{UdevTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	name := devName(t)
	if _, err := slow.Create(name, CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	removeOnCleanup(t, c, name)
	if err := slow.LoadTable(name, []Target{{Start: 0, Length: 2048, Type: "zero"}}, LoadOptions{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	err = slow.Resume(ctx, name)
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("Resume with an ended context = %v, want nil (udev was quick) or context.Canceled", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Resume held its caller %v after the context ended", d)
	}
	t.Logf("Resume with an ended context: %v after %v", err, time.Since(start))
	if info := wantInfoMatchesDmsetup(t, c, name); !info.LiveTable || info.Suspended {
		t.Fatalf("the device is not live after the cut-short Resume: %+v", info)
	}
}

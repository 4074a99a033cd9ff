package watch

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/thinctl/thinctl/thinpool"
)

// commandWatcher is a watcher that only runs thin commands.
func commandWatcher(argv []string, timeout time.Duration, events *[]Event) *watcher {
	return &watcher{log: slog.New(slog.DiscardHandler), o: Options{ThinCommand: argv, CommandTimeout: timeout,
		OnEvent: func(e Event) { *events = append(*events, e) }}}
}

func TestAThinCommandThatHangsIsKilledWithWhatItStarted(t *testing.T) {
	var events []Event
	pidFile := filepath.Join(t.TempDir(), "child")
	w := commandWatcher([]string{"/bin/sh", "-c", "sleep 60 & echo $! >" + pidFile + "; wait"}, 300*time.Millisecond, &events)
	start := time.Now()
	w.runCommand(context.Background(), status(thinpool.MiB, thinpool.GiB, thinpool.MiB, 64*thinpool.MiB))
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("a hanging thin command held the watcher for %v", took)
	}
	if len(events) != 1 || events[0].Kind != "error" || !errors.Is(events[0].Err, context.DeadlineExceeded) {
		t.Fatalf("events %+v: want one error that says the command was killed", events)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/proc/" + strings.TrimSpace(string(b))); err == nil {
		time.Sleep(200 * time.Millisecond) // reaped by init a moment later
		if st, err := os.ReadFile("/proc/" + strings.TrimSpace(string(b)) + "/stat"); err == nil && !strings.Contains(string(st), ") Z ") {
			t.Fatalf("the command's child %s still runs", b)
		}
	}
}

func TestAThinCommandThatFloodsItsOutputCostsAFewKilobytes(t *testing.T) {
	var events []Event
	w := commandWatcher([]string{"/bin/sh", "-c", "head -c 50000000 /dev/zero | tr '\\0' x"}, 20*time.Second, &events)
	w.runCommand(context.Background(), status(thinpool.MiB, thinpool.GiB, thinpool.MiB, 64*thinpool.MiB))
	if len(events) != 1 || events[0].Kind != "command" {
		t.Fatalf("events %+v", events)
	}
	if n := len(events[0].Message); n > commandOutputLimit+200 || !strings.Contains(events[0].Message, "(49995904 more bytes)") {
		t.Fatalf("the logged output is %d bytes: %.200s", n, events[0].Message)
	}
}

func TestAMetricsFileThatIsASymlinkIsReplacedNotFollowed(t *testing.T) {
	dir := t.TempDir()
	outside := filepath.Join(t.TempDir(), "precious")
	if err := os.WriteFile(outside, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "thinctl.prom")
	if err := os.Symlink(outside, path); err != nil {
		t.Fatal(err)
	}
	st := status(thinpool.MiB, thinpool.GiB, thinpool.MiB, 64*thinpool.MiB)
	if err := writeMetrics(path, st, metricsOf(st, thinpool.HostSpace{}, 0, time.Now())); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(outside); string(b) != "keep me" {
		t.Fatalf("the symlink's target was written: %q", b)
	}
	if fi, err := os.Lstat(path); err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("metrics path after the write: %v %v", fi, err)
	}
}

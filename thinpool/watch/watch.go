// Package watch guards a thin pool while it runs, as dmeventd's thin
// plugin does for LVM: it sleeps on the pool's kernel events and wakes on
// a timer to read the host filesystem too, warns as use crosses
// WarnLevels, grows data and metadata as a pure Policy decides (loop files
// and block devices through Pool.Grow, pools thinctl does not own through
// the operator's thin command), tunes the pool table's low water mark and
// out-of-space mode (Pool.SetTableTuning, Pool.Retune) and writes a
// metrics file for node_exporter's textfile collector.
//
// It is a client of thinpool.Pool: it reaches the pool only through the
// Pool's exported methods, on a Pool value of its own (thinctl pool watch
// runs it in a process of its own).
package watch

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/thinpool"
	"github.com/thinctl/thinctl/thinpool/internal/bytesize"
)

// DefaultInterval is how often Run reads the pool and its host
// filesystem when no kernel event wakes it.
const DefaultInterval = 10 * time.Second

// DefaultCommandTimeout is how long a thin command may run.
const DefaultCommandTimeout = 5 * time.Minute

// commandOutputLimit is how much of a thin command's output is logged.
const commandOutputLimit = 4096

// Options tunes Run.
type Options struct {
	Policy Policy
	// Interval is how often the pool and its host filesystem are read
	// besides the kernel's events (0: DefaultInterval).
	Interval time.Duration
	// ThinCommand is run (argv, the pool's device name appended) for an
	// external pool whose data or metadata use reached the threshold,
	// with DMEVENTD_THIN_POOL_DATA and DMEVENTD_THIN_POOL_METADATA set to
	// the used percentages as dmeventd's thin plugin does.
	ThinCommand []string
	// CommandTimeout ends a thin command that runs longer (it is killed;
	// 0: DefaultCommandTimeout), so that one that hangs cannot stop the
	// watching.
	CommandTimeout time.Duration
	// MetricsFile, when set, is rewritten after every reading in the
	// node_exporter textfile collector's format (temp file and rename).
	MetricsFile string
	// Logger receives what Run does (nil: nothing is logged).
	Logger *slog.Logger
	// OnEvent, when set, is called for each event (after the log line);
	// it must not block for long.
	OnEvent func(Event)
}

// Event is one thing Run noticed or did.
type Event struct {
	// Kind is "start", "warn", "grow", "held", "command", "tune", "error" or "stop".
	Kind    string
	Message string
	Err     error
	Status  thinpool.Status
	Host    thinpool.HostSpace
}

// Run guards the pool p until ctx ends: it sleeps on the kernel's pool
// events (the low water mark set from the policy's threshold, mode
// changes, out of space) and wakes every Interval to read the host
// filesystem too; it warns at WarnLevels, grows data and metadata by
// Policy (loop files and block devices through Grow, external pools by
// ThinCommand) and writes MetricsFile. While autoextend can still grow
// the pool, the pool table queues writes that find no free block
// (queue_if_no_space) so that they wait for the growth instead of
// failing; at the cap or the host reserve it fails them at once again.
// When ctx ends the pool table is put back as thinctl loads it and Run
// returns nil. Errors of one reading are reported (Event "error")
// and tried again; only a pool that cannot be read at the start ends
// Run with an error.
func Run(ctx context.Context, p *thinpool.Pool, opts Options) error {
	w := &watcher{p: p, o: opts, log: opts.Logger}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	if w.o.Interval <= 0 {
		w.o.Interval = DefaultInterval
	}
	st, err := p.Status()
	if err != nil {
		return err
	}
	// Only loop files are grown here; block devices and pools thinctl
	// did not make are grown by the operator's command.
	w.external, w.byCommand = st.ExternalPool, st.ExternalPool || st.DataFile == ""
	if err := p.Preallocate(ctx, thinpool.PreallocateOptions{}); err != nil {
		w.emit(Event{Kind: "warn", Message: "the metadata file could not be allocated; a full host filesystem can fail a metadata commit", Err: err})
	}
	w.pool = st.PoolName
	w.emit(Event{Kind: "start", Message: "watching thin pool " + st.PoolName, Status: st})
	defer w.restore()
	for {
		eventNr, err := p.EventNr()
		if err != nil {
			w.emit(Event{Kind: "error", Message: "read the pool device", Err: err})
		}
		w.once(ctx)
		if ctx.Err() != nil {
			return nil
		}
		wctx, cancel := context.WithTimeout(ctx, w.o.Interval)
		if err == nil {
			err = p.WaitEvent(wctx, eventNr)
		} else {
			<-wctx.Done()
		}
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			w.emit(Event{Kind: "error", Message: "wait for a pool event", Err: err})
			sleepCtx(ctx, w.o.Interval)
		}
	}
}

type watcher struct {
	p         *thinpool.Pool
	pool      string // the pool's device-mapper name
	o         Options
	log       *slog.Logger
	external  bool // the pool table is not thinctl's: never reloaded
	byCommand bool // grown by ThinCommand, not by Grow
	// the warning levels last reported, so each is said once per crossing
	dataLevel, metaLevel float64
	grows                int
	tuned                bool
	lastHeld             string // the held reasons last reported
}

// once reads the pool and acts on what the policy decides.
func (w *watcher) once(ctx context.Context) {
	st, err := w.p.Status()
	if err != nil {
		w.emit(Event{Kind: "error", Message: "read the pool's status", Err: err})
		return
	}
	host, err := w.p.HostSpace()
	if err != nil {
		w.emit(Event{Kind: "error", Message: "read the host filesystem", Err: err, Status: st})
	}
	d := w.o.Policy.Decide(Input{Status: st, Host: host, External: w.byCommand})
	w.warn(st, host, d)
	if held := strings.Join(d.Held, "; "); held != w.lastHeld {
		for _, h := range d.Held {
			w.emit(Event{Kind: "held", Message: h, Status: st, Host: host})
		}
		w.lastHeld = held
	}
	grew := false
	switch {
	case d.RunCommand && len(w.o.ThinCommand) > 0:
		w.runCommand(ctx, st)
	case d.NewDataSize != 0 || d.NewMetadataSize != 0:
		w.setTuning(d)
		err := w.p.Grow(ctx, thinpool.GrowOptions{DataSize: d.NewDataSize, MetadataSize: d.NewMetadataSize})
		if err != nil {
			w.emit(Event{Kind: "error", Message: "grow the pool", Err: err, Status: st, Host: host})
			break
		}
		w.grows++
		grew = true
		after, _ := w.p.Status()
		w.emit(Event{Kind: "grow", Status: after, Host: host, Message: fmt.Sprintf("grew data %s -> %s, metadata %s -> %s",
			bytesize.Format(st.DataTotal), bytesize.Format(after.DataTotal), bytesize.Format(st.MetadataTotal), bytesize.Format(after.MetadataTotal))})
		st = after
	}
	// A growth loaded the table already (its resume raises an event, and
	// the next reading tunes it for the new size).
	if !grew && !w.external && d.LowWaterBlocks != 0 {
		w.setTuning(d)
		changed, err := w.p.Retune(ctx)
		if err != nil {
			w.emit(Event{Kind: "error", Message: "set the pool's low water mark", Err: err, Status: st})
		} else if changed {
			w.emit(Event{Kind: "tune", Status: st, Message: fmt.Sprintf("pool table: low water mark %d blocks, %s",
				d.LowWaterBlocks, map[bool]string{true: "queue_if_no_space", false: "error_if_no_space"}[d.Queue])})
		}
	}
	if w.o.MetricsFile != "" {
		host, _ = w.p.HostSpace()
		if err := writeMetrics(w.o.MetricsFile, st, metricsOf(st, host, w.grows, time.Now())); err != nil {
			w.emit(Event{Kind: "error", Message: "write the metrics file", Err: err, Status: st})
		}
	}
}

// setTuning makes the next table load carry the decision's low water
// mark and out-of-space mode.
func (w *watcher) setTuning(d Decision) {
	if w.external || d.LowWaterBlocks == 0 {
		return
	}
	if err := w.p.SetTableTuning(thinpool.TableTuning{LowWaterBlocks: d.LowWaterBlocks, QueueIfNoSpace: d.Queue}); err != nil {
		return
	}
	w.tuned = true
}

// warn reports each warning level once as use crosses it upwards.
func (w *watcher) warn(st thinpool.Status, host thinpool.HostSpace, d Decision) {
	for _, c := range []struct {
		what  string
		level float64
		last  *float64
		pct   float64
	}{{"data", d.DataLevel, &w.dataLevel, st.DataUsedPercent}, {"metadata", d.MetadataLevel, &w.metaLevel, st.MetadataUsedPercent}} {
		if c.level > *c.last {
			w.emit(Event{Kind: "warn", Status: st, Host: host,
				Message: fmt.Sprintf("thin pool %s %s is %.1f%% full", st.PoolName, c.what, c.pct)})
		}
		*c.last = c.level
	}
}

// runCommand runs the operator's thin command for an external pool.
func (w *watcher) runCommand(ctx context.Context, st thinpool.Status) {
	argv := append(append([]string{}, w.o.ThinCommand...), st.PoolName)
	timeout := w.o.CommandTimeout
	if timeout <= 0 {
		timeout = DefaultCommandTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(),
		fmt.Sprintf("DMEVENTD_THIN_POOL_DATA=%d", int(st.DataUsedPercent)),
		fmt.Sprintf("DMEVENTD_THIN_POOL_METADATA=%d", int(st.MetadataUsedPercent)))
	// Its own process group, so that a timeout ends what it started too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	out := &limitedBuffer{max: commandOutputLimit}
	cmd.Stdout, cmd.Stderr = out, out
	err := cmd.Run()
	if ctx.Err() == context.DeadlineExceeded {
		err = errors.Wrapf(ctx.Err(), "killed after %v", timeout)
	}
	msg := fmt.Sprintf("ran %s: %s", strings.Join(argv, " "), strings.TrimSpace(out.String()))
	if err != nil {
		w.emit(Event{Kind: "error", Message: msg, Err: err, Status: st})
		return
	}
	w.emit(Event{Kind: "command", Message: msg, Status: st})
}

// restore loads the pool table as thinctl always does (default low water
// mark, error_if_no_space), so that writes no watcher will grow for fail
// at once again.
func (w *watcher) restore() {
	if w.tuned {
		ctx := context.Background()
		if err := w.p.SetTableTuning(thinpool.TableTuning{}); err == nil {
			if _, err := w.p.Retune(ctx); err != nil {
				w.emit(Event{Kind: "error", Message: "put the pool table back", Err: err})
			}
		}
	}
	w.emit(Event{Kind: "stop", Message: "stopped watching thin pool " + w.pool})
}

func (w *watcher) emit(e Event) {
	level := slog.LevelInfo
	switch e.Kind {
	case "warn", "held":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	}
	attrs := []any{"event", e.Kind}
	if e.Status.DataTotal != 0 {
		attrs = append(attrs, "data_pct", fmt.Sprintf("%.1f", e.Status.DataUsedPercent),
			"metadata_pct", fmt.Sprintf("%.1f", e.Status.MetadataUsedPercent))
	}
	if e.Err != nil {
		attrs = append(attrs, "err", e.Err.Error())
	}
	w.log.Log(context.Background(), level, e.Message, attrs...)
	if w.o.OnEvent != nil {
		w.o.OnEvent(e)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// limitedBuffer keeps the first max bytes written to it and counts the
// rest, so that a command that prints without end costs no memory.
type limitedBuffer struct {
	buf     bytes.Buffer
	max     int
	dropped int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	n := min(len(p), b.max-b.buf.Len())
	b.buf.Write(p[:n])
	b.dropped += len(p) - n
	return len(p), nil
}

func (b *limitedBuffer) String() string {
	if b.dropped == 0 {
		return b.buf.String()
	}
	return fmt.Sprintf("%s... (%d more bytes)", b.buf.String(), b.dropped)
}

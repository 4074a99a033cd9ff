package main

import (
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/driver"
	dmdriver "github.com/thinctl/thinctl/driver/devicemapper"
	"github.com/thinctl/thinctl/thinpool"
	"github.com/thinctl/thinctl/thinpool/watch"
)

// watchOptions are pool watch's flags.
type watchOptions struct {
	threshold, step       float64
	thresholdSet, stepSet bool
	maxData, maxMeta      uint64
	hostReserve           uint64
	hostReserveSet        bool
	interval              time.Duration
	thinCommand           string
	metricsFile           string
	preallocate           bool // pool init, pool grow: allocate the data file too
}

// Defaults of pool watch.
const (
	defaultWatchThreshold = 80.0
	// defaultHostReservePercent is the host filesystem's share a loop
	// pool's growth leaves free when --host-reserve is not given.
	defaultHostReservePercent = 5
)

func watchFlags(fs *flag.FlagSet, o *options) {
	w := &o.watch
	fs.Var(percentValue{&w.threshold, &w.thresholdSet}, "autoextend-threshold",
		"grow data or metadata when its use reaches `PCT` (default 80%; 100% only warns)")
	fs.Var(percentValue{&w.step, &w.stepSet}, "autoextend-step", "grow by `PCT` of the current size (default 20%)")
	fs.Var(sizeValue{&w.maxData}, "max-data-size", "never grow data past `SIZE` (default: only the host reserve bounds a loop pool)")
	fs.Var(sizeValue{&w.maxMeta}, "max-metadata-size", "never grow metadata past `SIZE` (default: the kernel's 15.9G)")
	fs.Var(setSizeValue{&w.hostReserve, &w.hostReserveSet}, "host-reserve",
		"leave `SIZE` free on a loop pool's host filesystem, counting what its sparse files may still take (default 5% of it)")
	fs.DurationVar(&w.interval, "interval", watch.DefaultInterval, "read the pool and its host filesystem every `DURATION` besides kernel events")
	fs.StringVar(&w.thinCommand, "thin-command", "", "for a pool on block devices or --thinpool-dev: run `CMD` (split at spaces, the pool's name appended) when use reaches the threshold, with DMEVENTD_THIN_POOL_DATA/METADATA set")
	fs.StringVar(&w.metricsFile, "metrics-file", "", "write node_exporter textfile-collector gauges to `FILE` (replaced atomically)")
}

// preallocateFlag is pool init's and pool grow's --preallocate.
func preallocateFlag(fs *flag.FlagSet, o *options) {
	fs.BoolVar(&o.watch.preallocate, "preallocate", false, "allocate the data file on the host filesystem too (the metadata file always is)")
}

// setSizeValue is a size flag that remembers being given (0 is a value).
type setSizeValue struct {
	n   *uint64
	set *bool
}

func (v setSizeValue) String() string { return "" }

func (v setSizeValue) Set(s string) error {
	if err := (sizeValue{v.n}).Set(s); err != nil {
		return err
	}
	*v.set = true
	return nil
}

func validatePoolWatch(c *call) error {
	w := c.opts.watch
	if w.thresholdSet && w.threshold == 0 {
		return usagef("invalid --autoextend-threshold 0%%: give 1%% to 100%% (100%% only warns)")
	}
	if w.stepSet && w.step == 0 {
		return usagef("invalid --autoextend-step 0%%: give more than 0%%")
	}
	if w.interval < 100*time.Millisecond {
		return usagef("invalid --interval %v: give at least 100ms", w.interval)
	}
	if w.maxMeta > thinpool.MaxMetadataSize {
		return usagef("invalid --max-metadata-size %s: a thin pool uses at most %s of metadata", humanSize(w.maxMeta), humanSize(thinpool.MaxMetadataSize))
	}
	if c.set["thin-command"] && strings.TrimSpace(w.thinCommand) == "" {
		return usagef("--thin-command is empty: give the program to run")
	}
	return nil
}

// watchPolicy turns the flags into the library's policy; the host
// reserve's default needs the pool's host filesystem.
func (w watchOptions) policy(host thinpool.HostSpace) watch.Policy {
	p := watch.Policy{Threshold: defaultWatchThreshold, Step: watch.DefaultAutoextendStep,
		MaxDataSize: w.maxData, MaxMetadataSize: w.maxMeta, HostReserve: w.hostReserve}
	if w.thresholdSet {
		p.Threshold = w.threshold
	}
	if w.stepSet {
		p.Step = w.step
	}
	if !w.hostReserveSet {
		p.HostReserve = host.Total * defaultHostReservePercent / 100
	}
	return p
}

func runPoolWatch(c *call) error {
	return c.withDriver(func(d driver.Driver) error {
		p, err := poolOf(c, d)
		if err != nil {
			return err
		}
		host, err := p.HostSpace()
		if err != nil {
			return err
		}
		st, err := p.Status()
		if err != nil {
			return err
		}
		w := c.opts.watch
		if w.thinCommand != "" && host.Loop {
			return usagef("--thin-command is for pools on block devices or --thinpool-dev; pool watch grows loop files itself")
		}
		log := slog.New(slog.NewTextHandler(c.app.stderr, &slog.HandlerOptions{
			// journald stamps each line; a terminal user has a clock.
			ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
				if a.Key == slog.TimeKey && len(groups) == 0 {
					return slog.Attr{}
				}
				return a
			},
		}))
		pol := w.policy(host)
		if !pol.Autoextend() {
			log.Info("autoextend is off (threshold 100%): warnings and metrics only")
		} else if !host.Loop && w.thinCommand == "" {
			log.Warn(fmt.Sprintf("thin pool %s is not on loop files and no --thin-command is given: nothing can grow it, only warnings and metrics", st.PoolName))
		}
		return watch.Run(c.ctx(), p, watch.Options{
			Policy: pol, Interval: w.interval, ThinCommand: strings.Fields(w.thinCommand),
			MetricsFile: w.metricsFile, Logger: log,
		})
	})
}

// poolOf returns the thin pool behind a devicemapper driver.
func poolOf(c *call, d driver.Driver) (*thinpool.Pool, error) {
	dd, ok := d.(*dmdriver.Driver)
	if !ok {
		return nil, &dmOnlyError{what: c.cmd.name, driver: d.String()}
	}
	return dd.Pool(), nil
}

// hostSpaceWarnings allocates what init and grow leave to allocate (the
// metadata file of a pool made before thinctl allocated it; with
// --preallocate the data file) and prints a warning line on stderr for
// each way the host filesystem can still fail the pool. Failing to
// allocate with --preallocate is an error; without, a warning.
func hostSpaceWarnings(c *call, d driver.Driver) error {
	dd, ok := d.(*dmdriver.Driver)
	if !ok {
		return nil
	}
	p := dd.Pool()
	err := p.Preallocate(c.ctx(), thinpool.PreallocateOptions{Data: c.opts.watch.preallocate})
	if err != nil && c.opts.watch.preallocate {
		return err
	}
	h, herr := p.HostSpace()
	if herr != nil || !h.Loop {
		return herr
	}
	c.endProgress()
	if err != nil || h.MetadataSparse() {
		why := "the host filesystem cannot allocate it"
		if errors.Is(err, unix.ENOSPC) {
			why = "the host filesystem has no room for it"
		}
		fmt.Fprintf(c.app.stderr, "warning: the metadata file is not fully allocated (%s): a full host filesystem can turn the pool read-only\n", why)
	}
	if s := h.Short(); s > 0 {
		fmt.Fprintf(c.app.stderr, "warning: the pool may still take %s from the filesystem at %s, which has %s free (%s short): "+
			"writes into the pool fail once it is full; free space there before the pool needs it\n",
			humanSize(h.Needed()), h.Dir, humanSize(h.Free), humanSize(s))
	}
	return nil
}

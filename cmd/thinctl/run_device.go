package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/driver"
)

// runCreate creates a device; with --activate it also activates it in the
// same process (one open of the root) and prints only its path, so that
// dev=$(thinctl create ID --activate) works.
func runCreate(c *call) error {
	return c.withDriver(func(d driver.Driver) error {
		var a driver.Activator
		if c.opts.activate {
			// Refused before anything is created.
			var ok bool
			if a, ok = d.(driver.Activator); !ok {
				return &dmOnlyError{what: "create --activate", driver: d.String()}
			}
		}
		opts := &driver.CreateOpts{}
		if c.opts.size > 0 {
			opts.StorageOpt = map[string]string{"size": strconv.FormatUint(c.opts.size, 10)}
		}
		if err := d.CreateReadWrite(c.ctx(), c.id(), c.opts.parent, opts); err != nil {
			return err
		}
		if a != nil {
			path, err := a.Activate(c.ctx(), c.id())
			if err != nil {
				return errors.Wrapf(err, "created %s but could not activate it (thinctl activate %s retries; thinctl remove %s drops it)", c.id(), c.id(), c.id())
			}
			fmt.Fprintln(c.stdout(), path)
			return nil
		}
		what := "a snapshot of the base device"
		switch {
		case c.opts.parent != "":
			what = "a snapshot of " + c.opts.parent
		case c.ch.Name != devicemapper:
			what = "an empty layer"
		}
		fmt.Fprintf(c.stdout(), "Created %s, %s\n", c.id(), what)
		return nil
	})
}

func runMount(c *call) error {
	return c.withDriver(func(d driver.Driver) error {
		m, err := need[driver.Mounter](c, d)
		if err != nil {
			return err
		}
		path, err := m.Mount(c.ctx(), c.id(), driver.MountOptions{Options: c.opts.mountOpts})
		if len(c.opts.mountOpts) > 0 && errors.Is(err, driver.ErrNotSupported) {
			return &dmOnlyError{what: "--mount-opt", driver: d.String()}
		}
		if err != nil {
			return err
		}
		fmt.Fprintln(c.stdout(), path)
		return nil
	})
}

func runUnmount(c *call) error {
	return c.withDriver(func(d driver.Driver) error {
		m, err := need[driver.Mounter](c, d)
		if err != nil {
			return err
		}
		if err := m.Unmount(c.ctx(), c.id()); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout(), "Unmounted %s\n", c.id())
		return nil
	})
}

func runActivate(c *call) error {
	return c.withDriver(func(d driver.Driver) error {
		a, err := need[driver.Activator](c, d)
		if err != nil {
			return err
		}
		path, err := a.Activate(c.ctx(), c.id())
		if err != nil {
			return err
		}
		fmt.Fprintln(c.stdout(), path)
		return nil
	})
}

func runDeactivate(c *call) error {
	return c.withDriver(func(d driver.Driver) error {
		a, err := need[driver.Activator](c, d)
		if err != nil {
			return err
		}
		if err := a.Deactivate(c.ctx(), c.id()); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout(), "Deactivated %s\n", c.id())
		return nil
	})
}

// runRemove removes a device. A deferred removal is not a failure: the
// deletion is recorded and finishes by itself, so it exits 0 and says so
// on stderr.
func runRemove(c *call) error {
	return c.withDriver(func(d driver.Driver) error {
		err := d.Remove(c.ctx(), c.id())
		c.endProgress()
		if errors.Is(err, driver.ErrDeferred) {
			fmt.Fprintf(c.app.stderr, "thinctl: %s: %s\n%s\n", c.what(), escapeControls(oneLine(err.Error())), deferredHint)
			fmt.Fprintf(c.stdout(), "Deferred removal of %s\n", c.id())
			return nil
		}
		if err != nil {
			return err
		}
		if sr, ok := d.(spaceReturner); ok && !c.opts.noWait {
			if err := sr.ReturnSpace(c.ctx()); err != nil {
				// The removal itself is done and durable.
				fmt.Fprintf(c.app.stderr, "thinctl: %s: removed, but its space is not back yet: %s\n%s\n", c.what(), escapeControls(oneLine(err.Error())), returnHint)
			}
		}
		fmt.Fprintf(c.stdout(), "Removed %s\n", c.id())
		return nil
	})
}

// spaceReturner is a backend that gives a removed device's space back after
// the removal returned (devicemapper with discards).
type spaceReturner interface {
	ReturnSpace(ctx context.Context) error
}

// returnHint follows the note remove prints when the space return failed.
const returnHint = "hint: 'thinctl pool status' shows what is still being returned; 'thinctl gc' retries"

// devices lists d's layers as devices, sorted by ID.
func (c *call) devices(d driver.Driver) ([]deviceInfo, error) {
	l, err := need[driver.Lister](c, d)
	if err != nil {
		return nil, err
	}
	layers, err := l.List()
	if err != nil {
		return nil, err
	}
	out := make([]deviceInfo, 0, len(layers))
	for _, li := range layers {
		out = append(out, deviceFromLayer(li))
	}
	return out, nil
}

func runList(c *call) error {
	return c.withDriver(func(d driver.Driver) error {
		ds, err := c.devices(d)
		if err != nil {
			return err
		}
		if c.json() {
			return writeJSON(c.stdout(), ds)
		}
		return writeDeviceList(c.stdout(), ds)
	})
}

func runInfo(c *call) error {
	return c.withDriver(func(d driver.Driver) error {
		l, err := need[driver.Lister](c, d)
		if err != nil {
			return err
		}
		li, err := driver.Layer(l, c.id())
		if err != nil {
			return err
		}
		dev := deviceFromLayer(li)
		if c.json() {
			return writeJSON(c.stdout(), dev)
		}
		return writeDeviceInfo(c.stdout(), dev)
	})
}

// runCheck exits 0 when consistent or when --repair fixed every problem.
func runCheck(c *call) error {
	return c.withDriver(func(d driver.Driver) error {
		ch, err := need[driver.Checker](c, d)
		if err != nil {
			return err
		}
		dr, err := ch.Check(c.ctx(), driver.CheckOptions{Repair: c.opts.repair})
		if err != nil {
			return err
		}
		r := reportFromDriver(dr, c.rootFlag())
		if c.json() {
			err = writeJSON(c.stdout(), r)
		} else {
			err = writeCheck(c.stdout(), r, c.opts.repair)
		}
		if err != nil || r.Consistent {
			return err
		}
		left := 0
		for _, p := range r.Problems {
			if !p.fixed {
				left++
			}
		}
		if left == 0 && len(r.Problems) > 0 {
			return nil
		}
		return &problemsError{found: len(r.Problems), left: left, repaired: c.opts.repair, hint: checkHint(r)}
	})
}

func runGC(c *call) error {
	return c.withDriver(func(d driver.Driver) error {
		g, err := need[driver.Collector](c, d)
		if err != nil {
			return err
		}
		ids, err := g.GC(c.ctx())
		if len(ids) > 0 {
			fmt.Fprintf(c.stdout(), "Removed %s\n", strings.Join(ids, ", "))
		}
		// This process's Open goes on with any return a removal left
		// (in the background), so count what it returned since then.
		returned := 0
		if s, ok := d.(driver.PoolStatuser); ok {
			if st, serr := s.PoolStatus(); serr == nil {
				returned = st.ReturnedLayers
			}
		}
		if returned > 0 {
			noun := "devices"
			if returned == 1 {
				noun = "device"
			}
			fmt.Fprintf(c.stdout(), "Returned the space of %d removed %s\n", returned, noun)
		}
		if len(ids) == 0 && returned <= 0 && err == nil {
			fmt.Fprintln(c.stdout(), "Nothing to collect")
		}
		return err
	})
}

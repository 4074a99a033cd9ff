package main

import (
	"fmt"
	"strings"
)

func runCreate(c *call) error {
	return c.withStore(func(s store) error {
		if err := s.create(c.id(), c.opts.parent, c.opts.size); err != nil {
			return err
		}
		what := "a snapshot of the base device"
		switch {
		case c.opts.parent != "":
			what = "a snapshot of " + c.opts.parent
		case c.ch.name != devicemapper:
			what = "an empty layer"
		}
		fmt.Fprintf(c.stdout(), "Created %s, %s\n", c.id(), what)
		return nil
	})
}

func runMount(c *call) error {
	return c.withStore(func(s store) error {
		path, err := s.mount(c.id(), c.opts.mountOpts)
		if err != nil {
			return err
		}
		fmt.Fprintln(c.stdout(), path)
		return nil
	})
}

func runUnmount(c *call) error {
	return c.withStore(func(s store) error {
		if err := s.unmount(c.id()); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout(), "Unmounted %s\n", c.id())
		return nil
	})
}

func runActivate(c *call) error {
	return c.withStore(func(s store) error {
		path, err := s.(thinStore).activate(c.id())
		if err != nil {
			return err
		}
		fmt.Fprintln(c.stdout(), path)
		return nil
	})
}

func runDeactivate(c *call) error {
	return c.withStore(func(s store) error {
		if err := s.(thinStore).deactivate(c.id()); err != nil {
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
	return c.withStore(func(s store) error {
		deferred, err := s.remove(c.id())
		c.endProgress()
		if deferred {
			fmt.Fprintf(c.app.stderr, "thinctl: %s: %s\n%s\n", c.what(), escapeControls(oneLine(err.Error())), deferredHint)
			fmt.Fprintf(c.stdout(), "Deferred removal of %s\n", c.id())
			return nil
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout(), "Removed %s\n", c.id())
		return nil
	})
}

func runList(c *call) error {
	return c.withStore(func(s store) error {
		ds, err := s.devices()
		if err != nil {
			return err
		}
		if c.json() {
			if ds == nil {
				ds = []deviceInfo{}
			}
			return writeJSON(c.stdout(), ds)
		}
		return writeDeviceList(c.stdout(), ds)
	})
}

func runInfo(c *call) error {
	return c.withStore(func(s store) error {
		d, err := s.device(c.id())
		if err != nil {
			return err
		}
		if c.json() {
			return writeJSON(c.stdout(), d)
		}
		return writeDeviceInfo(c.stdout(), d)
	})
}

// runCheck exits 0 when consistent or when --repair fixed every problem.
func runCheck(c *call) error {
	return c.withStore(func(s store) error {
		r, err := s.check(c.opts.repair)
		if err != nil {
			return err
		}
		if r.Problems == nil {
			r.Problems = []problem{}
		}
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
		return &problemsError{found: len(r.Problems), left: left, repaired: c.opts.repair}
	})
}

func runGC(c *call) error {
	return c.withStore(func(s store) error {
		ids, err := s.gc()
		if len(ids) > 0 {
			fmt.Fprintf(c.stdout(), "Removed %s\n", strings.Join(ids, ", "))
		} else if err == nil {
			fmt.Fprintln(c.stdout(), "Nothing to collect")
		}
		return err
	})
}

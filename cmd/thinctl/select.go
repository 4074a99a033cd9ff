package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/dm"
	"github.com/thinctl/thinctl/driver"
	"github.com/thinctl/thinctl/thinpool"

	// Importing the file-level backends registers them with
	// driver.Register; their probes are used directly below.
	"github.com/thinctl/thinctl/overlayfallback/aufs"
	"github.com/thinctl/thinctl/overlayfallback/overlay2"
)

// probes tell, without creating or changing anything, whether this host
// can run a backend (each backend's own check).
var probes = map[string]func(root string) error{
	devicemapper: func(root string) error { return thinpool.Backend{}.Probe(root) },
	"overlay2":   func(root string) error { return overlay2.Backend{}.Probe(root) },
	"aufs":       func(string) error { return aufs.Supported() },
}

// probe runs name's probe; a backend without one is assumed usable.
func probe(name, root string) error {
	if p, ok := probes[name]; ok {
		return p(root)
	}
	return nil
}

// shortReason trims the sentinel text that ends a probe error.
func shortReason(err error) string {
	s := oneLine(err.Error())
	for _, sentinel := range []error{driver.ErrNotSupported, driver.ErrPrerequisitesMissing, dm.ErrNotSupported} {
		s = strings.TrimSuffix(s, ": "+sentinel.Error())
	}
	return s
}

const devicemapper = "devicemapper"

// choice is the backend a command runs on and why.
type choice struct {
	name   string // "devicemapper", "overlay2", "aufs"
	home   string // <root>/<name>
	reason string // why: shown by "pool init" and "pool status"
	// initialized reports whether the backend's state exists under root.
	initialized bool
}

// layerDrivers lists the registered file-level backends in auto's order.
func layerDrivers() []string {
	var out []string
	for _, n := range driver.Backends() {
		if n != devicemapper {
			out = append(out, n)
		}
	}
	return out
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// chooseDriver resolves --driver to a backend without creating anything.
// An explicit name is taken as is. auto keeps what root already holds —
// a thin pool or a file-level driver home (two of them is an error naming
// both) — so a host never silently switches backends; on a
// fresh root it picks devicemapper when the kernel can run dm-thin-pool and
// otherwise the first file-level backend whose probe passes.
func chooseDriver(root, name string) (choice, error) {
	if name != "auto" && name != "" {
		home := filepath.Join(root, name)
		init := isDir(home)
		if name == devicemapper {
			init = thinpool.Exists(root)
		}
		return choice{name: name, home: home, reason: "chosen with --driver", initialized: init}, nil
	}
	var found []choice
	if thinpool.Exists(root) {
		home := filepath.Join(root, devicemapper)
		found = append(found, choice{name: devicemapper, home: home, initialized: true,
			reason: home + " already holds a thin pool"})
	}
	for _, n := range layerDrivers() {
		home := filepath.Join(root, n)
		if isDir(home) {
			found = append(found, choice{name: n, home: home, initialized: true,
				reason: home + " already exists"})
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
	default:
		var homes, names []string
		for _, c := range found {
			homes = append(homes, c.home)
			names = append(names, c.name)
		}
		return choice{}, &hintedError{
			msg:  "--driver auto cannot choose: " + strings.Join(homes, " and ") + " both exist",
			hint: "name one with --driver (" + strings.Join(names, " or ") + "), or remove the other with --driver NAME pool destroy",
		}
	}
	dmErr := probe(devicemapper, root)
	if dmErr == nil {
		return choice{name: devicemapper, home: filepath.Join(root, devicemapper),
			reason: "the kernel has dm-thin-pool"}, nil
	}
	skipped := []string{"devicemapper unavailable: " + shortReason(dmErr)}
	for _, n := range layerDrivers() {
		if err := probe(n, root); err != nil {
			skipped = append(skipped, n+" unavailable: "+shortReason(err))
			continue
		}
		return choice{name: n, home: filepath.Join(root, n), reason: strings.Join(skipped, "; ")}, nil
	}
	return choice{}, errors.Wrapf(driver.ErrNotSupported, "no storage driver can run on this host (%s)", strings.Join(skipped, "; "))
}

// probeThinPool returns nil when the kernel can run a thin pool.
func probeThinPool(root string) error { return probe(devicemapper, root) }

// openStore opens the backend a command runs on; the backend's state must
// exist (see "pool init").
func (c *call) openStore() (store, error) {
	ch, err := c.app.choose(c.g.root, c.g.driver)
	if err != nil {
		return nil, err
	}
	c.ch = ch
	if c.cmd.dmOnly && ch.name != devicemapper {
		return nil, &dmOnlyError{what: c.cmd.name, driver: ch.name}
	}
	if !ch.initialized {
		switch {
		case ch.name == devicemapper:
			return nil, errors.Wrapf(thinpool.ErrNotInitialized, "%s", c.g.root)
		case c.g.driver == "auto":
			return nil, errors.Wrapf(errNoHome, "no pool or driver home under %s", c.g.root)
		}
		return nil, errNotInitialized(ch.name, ch.home)
	}
	if ch.name == devicemapper {
		if err := c.dmClient(); err != nil {
			return nil, err
		}
		p, err := thinpool.Open(context.TODO(), c.g.root, thinpool.OpenOptions{Progress: c.progress()})
		if err != nil {
			return nil, err
		}
		return &dmStore{p: p, ch: ch}, nil
	}
	d, _, err := driver.Select(c.g.root, ch.name, driver.Options{})
	if err != nil {
		return nil, err
	}
	return &layerStore{d: d, ch: ch, statfs: c.app.statfs}, nil
}

// dmClient opens the device-mapper control node before thinpool does, so
// that a kernel without device-mapper fails before any state is written,
// and installs the --debug logger.
func (c *call) dmClient() error {
	cl, err := dm.Default()
	if err != nil {
		return err
	}
	if c.g.debug {
		w := c.app.stderr
		cl.SetLogger(func(format string, args ...any) {
			writeDebug(w, format, args...)
		})
	}
	return nil
}

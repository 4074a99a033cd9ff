package main

import (
	"context"
	"fmt"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/driver"
	"github.com/thinctl/thinctl/fs"
	"github.com/thinctl/thinctl/thinpool"
)

// dmInitFlags are the pool init flags that only mean something for
// devicemapper.
var dmInitFlags = []string{"data-size", "metadata-size", "block-size", "base-size", "fs", "mkfs-arg",
	"mount-opt", "min-free-space", "data-dev", "metadata-dev", "thinpool-dev", "no-discard"}

func validatePoolInit(c *call) error {
	o := c.opts
	if o.blockSize != 0 && (o.blockSize < thinpool.MinBlockSize || o.blockSize > thinpool.MaxBlockSize || o.blockSize%thinpool.MinBlockSize != 0) {
		return usagef("invalid --block-size %q: use a multiple of 64K between 64K and 1G", humanSize(o.blockSize))
	}
	if (o.dataDev == "") != (o.metadataDev == "") {
		return usagef("--data-dev and --metadata-dev go together")
	}
	if o.thinpoolDev != "" && o.dataDev != "" {
		return usagef("--thinpool-dev excludes --data-dev and --metadata-dev")
	}
	if o.dataDev != "" || o.thinpoolDev != "" {
		for _, f := range []string{"data-size", "metadata-size", "block-size"} {
			if c.set[f] {
				return usagef("--%s does not apply to existing devices (--data-dev, --metadata-dev, --thinpool-dev)", f)
			}
		}
	}
	return nil
}

func validatePoolGrow(c *call) error {
	if c.opts.dataSize == 0 && c.opts.metadataSize == 0 {
		return usagef("give --data-size and/or --metadata-size")
	}
	return nil
}

func runPoolInit(c *call) error {
	ch, err := c.app.choose(c.g.root, c.g.driver)
	if err != nil {
		return err
	}
	c.ch = ch
	if ch.name != devicemapper {
		return c.initLayerHome()
	}
	o := c.opts
	opts := thinpool.Options{
		DataSize:       o.dataSize,
		MetadataSize:   o.metadataSize,
		BlockSize:      o.blockSize,
		BaseSize:       o.baseSize,
		Filesystem:     fs.Type(o.fsType),
		MkfsArgs:       o.mkfsArgs,
		MountOptions:   o.mountOpts,
		MinFreeSpace:   o.minFree,
		DataDevice:     o.dataDev,
		MetadataDevice: o.metadataDev,
		ThinPoolDevice: o.thinpoolDev,
		NoDiscard:      o.noDiscard,
		Progress:       c.progress(),
	}
	if thinpool.Exists(c.g.root) {
		return errors.Wrapf(thinpool.ErrAlreadyInit, "%s", ch.home)
	}
	if err := c.dmClient(); err != nil {
		return err
	}
	// A kernel without the thin-pool target fails here, before Init writes
	// anything.
	if o.thinpoolDev == "" {
		if err := probeThinPool(c.g.root); err != nil {
			return err
		}
	}
	p, err := thinpool.Init(context.TODO(), c.g.root, opts)
	if err != nil {
		return err
	}
	defer p.Close()
	st, err := p.Status()
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout(), "Initialized pool %s in %s: data %s, metadata %s, base device %s (%s)\n",
		st.PoolName, ch.home, humanSize(st.DataTotal), humanSize(st.MetadataTotal), humanSize(st.BaseSize), st.Filesystem)
	fmt.Fprintf(c.stdout(), "Driver: %s\n", driverText(ch.name, ch.reason))
	return nil
}

// initLayerHome is "pool init" for the file-level drivers: it creates the
// driver's home.
func (c *call) initLayerHome() error {
	for _, f := range dmInitFlags {
		if c.set[f] {
			return &dmOnlyError{what: "pool init --" + f, driver: c.ch.name}
		}
	}
	if c.ch.initialized {
		return errors.Wrapf(errAlreadyInit, "%s", c.ch.home)
	}
	d, _, err := driver.Select(c.g.root, c.ch.name, driver.Options{})
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout(), "Initialized %s driver home %s\n", d.String(), c.ch.home)
	fmt.Fprintf(c.stdout(), "Driver: %s\n", driverText(c.ch.name, c.ch.reason))
	return nil
}

// withStore opens the backend, runs f and closes the backend.
func (c *call) withStore(f func(s store) error) error {
	s, err := c.openStore()
	if err != nil {
		return err
	}
	defer s.close()
	return f(s)
}

func runPoolStatus(c *call) error {
	return c.withStore(func(s store) error {
		st, err := s.status()
		if err != nil {
			return err
		}
		if c.json() {
			return writeJSON(c.stdout(), st)
		}
		return writePoolStatus(c.stdout(), st)
	})
}

func runPoolUp(c *call) error {
	return c.withStore(func(s store) error {
		st, err := s.status()
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout(), "Up: %s (%s, %d devices)\n", s.label(), st.State, st.Devices)
		return nil
	})
}

func runPoolDown(c *call) error {
	return c.withStore(func(s store) error {
		if err := s.down(); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout(), "Down: %s\n", s.label())
		return nil
	})
}

func runPoolGrow(c *call) error {
	return c.withStore(func(s store) error {
		before, after, err := s.(thinStore).grow(c.opts.dataSize, c.opts.metadataSize)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout(), "Grew %s: data %s -> %s, metadata %s -> %s\n", s.label(),
			humanSize(before.DataTotalBytes), humanSize(after.DataTotalBytes),
			humanSize(before.MetadataTotalBytes), humanSize(after.MetadataTotalBytes))
		return nil
	})
}

func runPoolDestroy(c *call) error {
	return c.withStore(func(s store) error {
		label := s.label()
		if err := s.destroy(c.opts.force); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout(), "Destroyed %s\n", label)
		return nil
	})
}

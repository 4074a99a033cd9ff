package main

import (
	"fmt"

	"github.com/thinctl/thinctl/driver"
	"github.com/thinctl/thinctl/thinpool"
)

// dmInitFlags are the pool init flags that only mean something for
// devicemapper.
var dmInitFlags = []string{"data-size", "metadata-size", "block-size", "base-size", "fs", "mkfs-arg",
	"mount-opt", "min-free-space", "data-dev", "metadata-dev", "thinpool-dev", "no-discard", "preallocate"}

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
		for _, f := range []string{"data-size", "metadata-size", "block-size", "preallocate"} {
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
	if err := c.choose(); err != nil {
		return err
	}
	ch := c.ch
	var storageOpt map[string]string
	if ch.Name == devicemapper {
		storageOpt = c.storageOpt()
	} else {
		for _, f := range dmInitFlags {
			if c.set[f] {
				return &dmOnlyError{what: "pool init --" + f, driver: ch.Name}
			}
		}
	}
	d, err := driver.Init(c.ctx(), ch, c.options(storageOpt))
	if err != nil {
		return err
	}
	defer closeDriver(d)
	if err := hostSpaceWarnings(c, d); err != nil {
		return err
	}
	st, err := c.status(d)
	if err != nil {
		return err
	}
	if st.PoolName != "" {
		fmt.Fprintf(c.stdout(), "Initialized pool %s in %s: data %s, metadata %s, base device %s (%s)\n",
			st.PoolName, ch.Home, humanSize(st.DataTotalBytes), humanSize(st.MetadataTotalBytes),
			st.detail("Base device"), st.detail("Filesystem"))
	} else {
		fmt.Fprintf(c.stdout(), "Initialized %s driver home %s\n", d.String(), ch.Home)
	}
	fmt.Fprintf(c.stdout(), "Driver: %s\n", driverText(ch.Name, c.reason()))
	return nil
}

func runPoolStatus(c *call) error {
	return c.withDriver(func(d driver.Driver) error {
		st, err := c.status(d)
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
	return c.withDriver(func(d driver.Driver) error {
		u, err := need[driver.Upper](c, d)
		if err != nil {
			return err
		}
		if err := u.Up(c.ctx()); err != nil {
			return err
		}
		st, err := c.status(d)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout(), "Up: %s (%s, %d devices)\n", c.label(st), st.State, st.Devices)
		return nil
	})
}

func runPoolDown(c *call) error {
	return c.withDriver(func(d driver.Driver) error {
		dn, err := need[driver.Downer](c, d)
		if err != nil {
			return err
		}
		label := c.labelOf(d)
		if err := dn.Down(c.ctx()); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout(), "Down: %s\n", label)
		return nil
	})
}

func runPoolGrow(c *call) error {
	return c.withDriver(func(d driver.Driver) error {
		g, err := need[driver.Grower](c, d)
		if err != nil {
			return err
		}
		before, err := c.status(d)
		if err != nil {
			return err
		}
		if err := g.Grow(c.ctx(), driver.GrowOptions{DataSize: c.opts.dataSize, MetadataSize: c.opts.metadataSize}); err != nil {
			return err
		}
		if err := hostSpaceWarnings(c, d); err != nil {
			return err
		}
		after, err := c.status(d)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout(), "Grew %s: data %s -> %s, metadata %s -> %s\n", c.label(before),
			humanSize(before.DataTotalBytes), humanSize(after.DataTotalBytes),
			humanSize(before.MetadataTotalBytes), humanSize(after.MetadataTotalBytes))
		return nil
	})
}

func runPoolDestroy(c *call) error {
	return c.withDriver(func(d driver.Driver) error {
		ds, err := need[driver.Destroyer](c, d)
		if err != nil {
			return err
		}
		label := c.labelOf(d)
		if err := ds.Destroy(c.ctx(), c.opts.force); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout(), "Destroyed %s\n", label)
		return nil
	})
}

// labelOf names d's pool for a message printed after the pool is gone; a
// pool whose status cannot be read is named by its home.
func (c *call) labelOf(d driver.Driver) string {
	st, err := c.status(d)
	if err != nil {
		return c.ch.Name + " driver home " + c.ch.Home
	}
	return c.label(st)
}

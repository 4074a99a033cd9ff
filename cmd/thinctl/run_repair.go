package main

import (
	"fmt"
	"strings"

	"github.com/thinctl/thinctl/driver"
	"github.com/thinctl/thinctl/thinpool"
)

// thinPool returns the devicemapper driver's pool.
func thinPool(c *call, d driver.Driver) (*thinpool.Pool, error) {
	pd, ok := d.(interface{ Pool() *thinpool.Pool })
	if !ok || pd.Pool() == nil {
		return nil, &dmOnlyError{what: c.cmd.name, driver: d.String()}
	}
	return pd.Pool(), nil
}

func runPoolRepair(c *call) error {
	return c.withDriver(func(d driver.Driver) error {
		p, err := thinPool(c, d)
		if err != nil {
			return err
		}
		res, err := p.Repair(c.ctx(), thinpool.RepairOptions{SpareMetadataDevice: c.opts.spareMetaDev})
		if err != nil {
			return err
		}
		w := c.stdout()
		if res.Repaired {
			fmt.Fprintf(w, "Repaired the metadata of pool %s: thin_check found it damaged; thin_repair wrote %s (the old metadata stays untouched in %s)\n",
				p.Name(), res.NewMetadata, res.OldMetadata)
		} else {
			fmt.Fprintf(w, "The metadata of pool %s passed thin_check: the pool only needed a fresh activation (needs_check cleared)\n", p.Name())
		}
		fmt.Fprintf(w, "Pool %s is up and writable\n", p.Name())
		for _, n := range res.Notes {
			fmt.Fprintf(w, "note: %s\n", n)
		}
		if len(res.Lost) > 0 {
			fmt.Fprintf(w, "Lost in the repair (records kept; 'thinctl%s remove ID' each once you have what you need): %s\n", c.rootFlag(), strings.Join(res.Lost, " "))
		}
		for _, id := range res.FilesystemErrors {
			fmt.Fprintf(w, "Device %s: its filesystem recorded errors; run %s\n", id, fixCommand(string(thinpool.FixFilesystem), id, c.rootFlag()))
		}
		return nil
	})
}

func runFsck(c *call) error {
	return c.withDriver(func(d driver.Driver) error {
		p, err := thinPool(c, d)
		if err != nil {
			return err
		}
		id := c.args[0]
		res, err := p.Fsck(c.ctx(), id)
		if res.Output != "" && c.g.debug {
			fmt.Fprintln(c.app.stderr, res.Output)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout(), "%s: %s\n", id, res.Summary)
		return nil
	})
}

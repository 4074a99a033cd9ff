package main

import (
	"fmt"

	"github.com/thinctl/thinctl/driver"
)

func validateResize(c *call) error {
	if c.opts.size == 0 {
		return usagef("give the new size with --size")
	}
	return nil
}

// runResize grows a device and its filesystem.
func runResize(c *call) error {
	return c.withDriver(func(d driver.Driver) error {
		r, err := need[driver.Resizer](c, d)
		if err != nil {
			return err
		}
		if err := r.Resize(c.ctx(), c.id(), c.opts.size); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout(), "Resized %s to %s\n", c.id(), humanSize(c.opts.size))
		return nil
	})
}

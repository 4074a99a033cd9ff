package dm_test

import (
	"context"
	"fmt"

	"github.com/thinctl/thinctl/dm"
)

// Map a 1 GiB device that reads zeroes, look at it, and remove it again.
func Example() {
	c, err := dm.Default()
	if err != nil {
		fmt.Println(err)
		return
	}
	if _, err := c.Create("example-zero", dm.CreateOptions{}); err != nil {
		fmt.Println(err)
		return
	}
	defer c.Remove(context.Background(), "example-zero", dm.RemoveOptions{})
	table := []dm.Target{{Start: 0, Length: 2 << 20, Type: "zero"}}
	if err := c.LoadTable("example-zero", table, dm.LoadOptions{}); err != nil {
		fmt.Println(err)
		return
	}
	if err := c.Resume(context.Background(), "example-zero"); err != nil {
		fmt.Println(err)
		return
	}
	info, _ := c.Info("example-zero")
	fmt.Println(dm.NodePath("example-zero"), info.LiveTable)
}

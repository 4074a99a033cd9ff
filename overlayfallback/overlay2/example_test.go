package overlay2_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/thinctl/thinctl/driver"
	"github.com/thinctl/thinctl/overlayfallback/overlay2"
)

// A base layer, a writable layer on top, and the merged view of both.
func Example() {
	ctx := context.Background()
	d, err := overlay2.New("/var/lib/thinctl/overlay2", driver.Options{})
	if err != nil {
		fmt.Println(err) // wraps driver.ErrNotSupported when this host cannot run overlay2
		return
	}
	defer d.Cleanup(ctx)
	if err := d.Create(ctx, "base", "", nil); err != nil {
		fmt.Println(err)
		return
	}
	if err := d.CreateReadWrite(ctx, "container", "base", nil); err != nil {
		fmt.Println(err)
		return
	}
	root, err := d.Get(ctx, "container", "")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Put(ctx, "container")
	os.WriteFile(filepath.Join(root, "hello"), []byte("hi\n"), 0o644)
	changes, _ := d.Changes(ctx, "container", "base")
	fmt.Println(changes)
}

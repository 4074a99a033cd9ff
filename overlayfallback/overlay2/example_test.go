package overlay2_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/thinctl/thinctl/driver"
	"github.com/thinctl/thinctl/overlayfallback/overlay2"
)

// A base layer, a writable layer on top, and the merged view of both.
func Example() {
	d, err := overlay2.New("/var/lib/thinctl/overlay2", driver.Options{})
	if err != nil {
		fmt.Println(err) // wraps driver.ErrNotSupported when this host cannot run overlay2
		return
	}
	defer d.Cleanup()
	if err := d.Create("base", "", nil); err != nil {
		fmt.Println(err)
		return
	}
	if err := d.CreateReadWrite("container", "base", nil); err != nil {
		fmt.Println(err)
		return
	}
	root, err := d.Get("container", "")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Put("container")
	os.WriteFile(filepath.Join(root, "hello"), []byte("hi\n"), 0o644)
	changes, _ := d.Changes("container", "base")
	fmt.Println(changes)
}

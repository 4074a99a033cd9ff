package aufs_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/thinctl/thinctl/driver"
	"github.com/thinctl/thinctl/overlayfallback/aufs"
)

// Example creates a base layer and a container layer on it, writes through
// the union mount and lists what the container changed. It needs root and
// a kernel with aufs; elsewhere New says why not.
func Example() {
	ctx := context.Background()
	d, err := aufs.New("/var/lib/thinctl/aufs", driver.Options{})
	if errors.Is(err, driver.ErrNotSupported) || errors.Is(err, driver.ErrPrerequisitesMissing) {
		fmt.Println("aufs unavailable:", err)
		return
	}
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Cleanup(ctx)

	if err := d.Create(ctx, "base", "", nil); err != nil {
		fmt.Println(err)
		return
	}
	if err := d.CreateReadWrite(ctx, "web", "base", nil); err != nil {
		fmt.Println(err)
		return
	}
	root, err := d.Get(ctx, "web", "")
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = os.WriteFile(filepath.Join(root, "index.html"), []byte("hello\n"), 0o644)
	_ = d.Put(ctx, "web")

	changes, err := d.Changes(ctx, "web", "base")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, c := range changes {
		fmt.Println(c) // "A /index.html"
	}
}

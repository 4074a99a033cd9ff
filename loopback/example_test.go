package loopback_test

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/thinctl/thinctl/loopback"
)

// Attach a sparse file, grow it, let the loop device see the new size, and
// detach. Needs root and loop devices, so it has no Output line.
func Example() {
	f, err := os.CreateTemp("", "data-*.img")
	if err != nil {
		panic(err)
	}
	defer os.Remove(f.Name())
	f.Truncate(64 << 20)
	f.Close()

	info, err := loopback.Attach(context.Background(), f.Name(), loopback.Options{})
	if err != nil {
		fmt.Println("attach:", err)
		return
	}
	defer loopback.Detach(context.Background(), info.Path)
	fmt.Println(info.Path, "is backed by", info.BackingFile)

	os.Truncate(f.Name(), 128<<20)
	if err := loopback.SetCapacity(info.Path); err != nil {
		fmt.Println("set capacity:", err)
	}

	if found, err := loopback.FindByBackingFile(f.Name()); err == nil {
		fmt.Println("found again at", found.Path)
	}
}

// An autoclear device must stay open until something else holds it; the
// kernel detaches it when the last opener closes it.
func ExampleAttachOpen() {
	d, err := loopback.AttachOpen(context.Background(), "/var/lib/thinctl/devicemapper/data", loopback.Options{Autoclear: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	// ... load a device-mapper table that uses d.Path here ...
	d.Close()
	if _, err := loopback.GetInfo(d.Path); errors.Is(err, loopback.ErrNotFound) {
		fmt.Println("nothing held it: already detached")
	}
}

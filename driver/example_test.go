package driver_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/thinctl/thinctl/driver"

	// Importing a backend registers it and does nothing else. A program
	// that wants every backend imports driver/devicemapper and
	// overlayfallback/aufs as well.
	_ "github.com/thinctl/thinctl/overlayfallback/overlay2"
)

// Choose says which backend would run under a root, and why, without
// creating anything; Init then creates its state, and from then on "auto"
// keeps it. (This program registered only overlay2.)
func ExampleChoose() {
	root, _ := os.MkdirTemp("", "thinctl-example-")
	defer os.RemoveAll(root)

	ch, err := driver.Choose(root, "auto")
	if err != nil {
		fmt.Println("no backend:", err)
		return
	}
	fmt.Printf("%s, initialised: %v, because %s\n", ch.Name, ch.Initialized, ch.Reason)

	ctx := context.Background()
	d, err := driver.Init(ctx, ch, driver.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Cleanup(ctx)

	ch, _ = driver.Choose(root, "auto")
	fmt.Printf("%s, initialised: %v, because %s\n", ch.Name, ch.Initialized, strings.ReplaceAll(ch.Reason, root, "$ROOT"))
	// Output:
	// overlay2, initialised: false, because the kernel has overlay
	// overlay2, initialised: true, because $ROOT/overlay2 already exists
}

// Select opens (or, on a fresh root, initialises) a backend; layers are
// then created, mounted, written, listed and removed, every blocking call
// bounded by the context. Needs root (mounts).
func ExampleSelect() {
	root, _ := os.MkdirTemp("", "thinctl-example-")
	defer os.RemoveAll(root)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	d, _, err := driver.Select(ctx, root, "auto", driver.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Cleanup(ctx)

	if err := d.Create(ctx, "base", "", nil); err != nil {
		fmt.Println(err)
		return
	}
	if err := d.CreateReadWrite(ctx, "app", "base", nil); err != nil {
		fmt.Println(err)
		return
	}
	dir, err := d.Get(ctx, "app", "")
	if err != nil {
		fmt.Println(err)
		return
	}
	os.WriteFile(filepath.Join(dir, "hello"), []byte("hi\n"), 0o644)
	d.Put(ctx, "app")

	changes, _ := driver.DiffOf(d).Changes(ctx, "app", "base")
	fmt.Println("changes:", changes)
	layers, _ := d.(driver.Lister).List()
	for _, l := range layers {
		fmt.Printf("layer %s parent %q\n", l.ID, l.Parent)
	}

	err = d.Remove(ctx, "base")
	fmt.Println("remove base:", err != nil, errors.Is(err, driver.ErrHasChildren))
	fmt.Println("remove app:", d.Remove(ctx, "app"))
	fmt.Println("app exists:", d.Exists("app"))
	// Output:
	// changes: [A /hello]
	// layer app parent "base"
	// layer base parent ""
	// remove base: true true
	// remove app: <nil>
	// app exists: false
}

// ParseWhiteout classifies names in a layer stream.
func ExampleParseWhiteout() {
	for _, name := range []string{"etc/passwd", "etc/.wh.shadow", "var/cache/.wh..wh..opq"} {
		kind, target, _ := driver.ParseWhiteout(name)
		fmt.Printf("%-14s whiteout=%v opaque=%v target=%q\n", name, kind == driver.Whiteout, kind == driver.OpaqueMarker, target)
	}
	// Output:
	// etc/passwd     whiteout=false opaque=false target=""
	// etc/.wh.shadow whiteout=true opaque=false target="etc/shadow"
	// var/cache/.wh..wh..opq whiteout=false opaque=true target="var/cache"
}

package thinpool_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/thinctl/thinctl/thinpool"
)

// A pool with a small base device: create a device, snapshot it, write in
// the snapshot through its mount, and remove both. It needs root and a
// kernel with dm-thin-pool, so it has no Output line and does not run in
// `go test`.
func Example() {
	root := "/var/lib/thinctl-example"
	pool, err := thinpool.Init(root, thinpool.Options{
		DataSize:     2 * thinpool.GiB,
		MetadataSize: 64 * thinpool.MiB,
		BaseSize:     256 * thinpool.MiB,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	if err := pool.Create("image", "", thinpool.CreateOptions{}); err != nil {
		log.Fatal(err)
	}
	if err := pool.Create("container", "image", thinpool.CreateOptions{Size: 512 * thinpool.MiB}); err != nil {
		log.Fatal(err)
	}
	dir, err := pool.Mount("container", thinpool.MountOptions{})
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "hello"), []byte("hi\n"), 0o644); err != nil {
		log.Fatal(err)
	}
	if err := pool.Unmount("container"); err != nil {
		log.Fatal(err)
	}

	st, err := pool.Status()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s: %.1f%% of data used\n", st.PoolName, st.DataUsedPercent)

	for _, id := range []string{"container", "image"} {
		if err := pool.Remove(id); err != nil {
			log.Fatal(err)
		}
	}
	if err := pool.Down(); err != nil {
		log.Fatal(err)
	}
}

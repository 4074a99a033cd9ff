package thinpool_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	"github.com/thinctl/thinctl/dm"
	"github.com/thinctl/thinctl/thinpool"
)

// A pool with a small base device: create a device, snapshot it, write in
// the snapshot through its mount, and remove both. The program brings its
// own device-mapper client (with a logger and a shorter udev wait of its own,
// touching nobody else's) and a context that Ctrl-C or a deadline ends. It
// needs root and a kernel with dm-thin-pool, so it has no Output line and
// does not run in `go test`; the VM suite runs it.
func Example() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()

	client, err := dm.Open(dm.Options{
		Logger:      func(format string, args ...any) { log.Printf("dm: "+format, args...) },
		UdevTimeout: 10 * time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	root := filepath.Join(os.TempDir(), "thinctl-example")
	pool, err := thinpool.Init(ctx, root, thinpool.Options{
		DataSize:     2 * thinpool.GiB,
		MetadataSize: 64 * thinpool.MiB,
		BaseSize:     256 * thinpool.MiB,
		DM:           client,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	if err := pool.Create(ctx, "image", "", thinpool.CreateOptions{}); err != nil {
		log.Fatal(err)
	}
	if err := pool.Create(ctx, "container", "image", thinpool.CreateOptions{Size: 512 * thinpool.MiB}); err != nil {
		log.Fatal(err)
	}
	dir, err := pool.Mount(ctx, "container", thinpool.MountOptions{})
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "hello"), []byte("hi\n"), 0o644); err != nil {
		log.Fatal(err)
	}
	if err := pool.Unmount(ctx, "container"); err != nil {
		log.Fatal(err)
	}

	st, err := pool.Status()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s: %.1f%% of data used\n", st.PoolName, st.DataUsedPercent)

	for _, id := range []string{"container", "image"} {
		if err := pool.Remove(ctx, id); err != nil {
			log.Fatal(err)
		}
	}
	if err := pool.Destroy(ctx, false); err != nil {
		log.Fatal(err)
	}
}

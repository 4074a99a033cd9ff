package fs_test

import (
	"context"
	"fmt"
	"os"

	"github.com/thinctl/thinctl/fs"
	"golang.org/x/sys/unix"
)

// Format a device, read back what landed on it, mount it and unmount it
// again, naming the processes that keep it busy when the unmount fails.
func Example() {
	dev, target := "/dev/loop7", "/run/example-mnt"
	if err := fs.Mkfs(context.Background(), dev, fs.Ext4, fs.MkfsOptions{Label: "base"}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	info, err := fs.Probe(dev)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	fmt.Println(info.Type, info.UUID, info.Size)
	if err := fs.Mount(dev, target, info.Type, fs.MountOptions{Options: []string{"noatime"}}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	if err := fs.Unmount(target, fs.UnmountOptions{RemoveDir: true}); err != nil {
		var st unix.Stat_t
		if unix.Stat(dev, &st) == nil {
			if hs, _ := fs.Holders(st.Rdev, target); len(hs) > 0 {
				err = fmt.Errorf("%v: %s", err, fs.FormatHolders(hs))
			}
		}
		fmt.Fprintln(os.Stderr, err)
	}
}

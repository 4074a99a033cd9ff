// Command thinctl-v1gen makes a version 1 thinctl root with the release's
// thinpool library (the code of main before the journal), for the
// migration VM test: thinctl-v1gen ROOT [POOL] builds devices with labels,
// a grow pending and a deferred deletion (POOL: an existing thin-pool
// device to adopt, as Options.ThinPoolDevice); thinctl-v1gen ROOT create ID
// creates one device (run with THINCTL_FAILPOINTS to leave a transaction).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/thinctl/thinctl/thinpool"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "thinctl-v1gen:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	ctx := context.Background()
	root := args[0]
	if len(args) == 3 && args[1] == "create" {
		p, err := thinpool.Open(ctx, root, thinpool.OpenOptions{})
		if err != nil {
			return err
		}
		return p.Create(ctx, args[2], "", thinpool.CreateOptions{})
	}
	o := thinpool.Options{DataSize: thinpool.GiB, MetadataSize: 64 * thinpool.MiB, BaseSize: 256 * thinpool.MiB}
	if len(args) == 2 {
		o.ThinPoolDevice = args[1]
	}
	p, err := thinpool.Init(ctx, root, o)
	if err != nil {
		return err
	}
	steps := []struct {
		id, parent string
		opts       thinpool.CreateOptions
	}{
		{"image-1", "", thinpool.CreateOptions{Labels: map[string]string{"layer": "1", "empty": ""}}},
		{"image-2", "image-1", thinpool.CreateOptions{Size: 512 * thinpool.MiB}},
		{"ctr-1", "image-2", thinpool.CreateOptions{Labels: map[string]string{"containerd.io/snapshot/name": "default/12/sha256:9f2c", "containerd.io/snapshot/kind": "active"}}},
		{"held", "image-1", thinpool.CreateOptions{}},
	}
	for _, s := range steps {
		if err := p.Create(ctx, s.id, s.parent, s.opts); err != nil {
			return err
		}
	}
	mp, err := p.Mount(ctx, "held", thinpool.MountOptions{})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(mp, "data"), []byte("held\n"), 0o644); err != nil {
		return err
	}
	f, err := os.Open(filepath.Join(mp, "data")) // held open until this process exits
	if err != nil {
		return err
	}
	defer f.Close()
	if err := p.Remove(ctx, "held"); err == nil {
		return fmt.Errorf("removing a held device was not deferred")
	}
	devs, err := p.Devices()
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(devs)
}

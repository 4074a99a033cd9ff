package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/dm"
	"github.com/thinctl/thinctl/driver"
	"github.com/thinctl/thinctl/overlayfallback/overlay2"
	"github.com/thinctl/thinctl/thinpool"
)

// Geometry shared by every pool of a run.
const (
	poolDataSize = 4 * thinpool.GiB   // sparse; well under the scratch disk's free space
	poolMetaSize = 1 * thinpool.GiB   // sparse
	poolBlock    = 64 * thinpool.KiB  // the library's default
	deviceSize   = 1 * thinpool.GiB   // base size: every layer, every path
	rawFirstID   = uint32(0x800000)   // thin ids of the dmsetup path (floor: +0x100000)
	namePrefix   = "thinctl-bench-"   // dm names of the dmsetup and floor paths
	originID     = "origin"           // the library device every path snapshots
	overlayDir   = "overlay2"         // overlay2 home under the work dir
	poolDir      = "pool"             // library root (discards off)
	discardDir   = "pool-discard"     // library root (discards on)
	registryFile = "registry-probe"   // scratch dir for the durable-write probe
	minFreePct   = 1.0                // pools are sized for the scratch disk already
	fileMode     = os.FileMode(0o700) // work directories
)

// rig holds what a run sets up once.
type rig struct {
	work    string
	pool    *thinpool.Pool // discards off: measurements 1-5
	discard *thinpool.Pool // discards on: measurement 1 only
	ov      *overlay2.Driver
	dm      *dm.Client
	raw     rawPool
	lvmLoop string // the lvm peer's PV (measurement 6)
	logf    func(format string, args ...any)
}

func poolOptions(noDiscard bool) thinpool.Options {
	return thinpool.Options{DataSize: poolDataSize, MetadataSize: poolMetaSize, BlockSize: poolBlock,
		BaseSize: deviceSize, MinFreeSpace: minFreePct, NoDiscard: noDiscard}
}

// newRig cleans up what an interrupted earlier run left under work and
// sets up the pools, the origin device and the overlay2 home.
func newRig(work string, logf func(string, ...any)) (*rig, error) {
	c, err := dm.Default()
	if err != nil {
		return nil, errors.Wrap(err, "device-mapper")
	}
	r := &rig{work: work, dm: c, logf: logf}
	if err := r.cleanup(); err != nil {
		return nil, errors.Wrap(err, "clean up an earlier run")
	}
	if err := os.MkdirAll(work, fileMode); err != nil {
		return nil, err
	}
	logf("init the thin pool (discards off) in %s", filepath.Join(work, poolDir))
	if r.pool, err = thinpool.Init(context.Background(), filepath.Join(work, poolDir), poolOptions(true)); err != nil {
		return nil, errors.Wrap(err, "init pool")
	}
	logf("init the thin pool (discards on) in %s", filepath.Join(work, discardDir))
	if r.discard, err = thinpool.Init(context.Background(), filepath.Join(work, discardDir), poolOptions(false)); err != nil {
		return nil, errors.Wrap(err, "init discard pool")
	}
	for _, p := range []*thinpool.Pool{r.pool, r.discard} {
		if err := p.Create(context.Background(), originID, "", thinpool.CreateOptions{}); err != nil {
			return nil, errors.Wrap(err, "create the origin device")
		}
	}
	dev, err := r.pool.Device(originID)
	if err != nil {
		return nil, err
	}
	originName, err := r.pool.DeviceName(originID)
	if err != nil {
		return nil, err
	}
	info, err := c.Info(r.pool.Name())
	if err != nil {
		return nil, errors.Wrap(err, "pool device")
	}
	r.raw = rawPool{poolName: r.pool.Name(), poolDev: info.Dev, originID: dev.DeviceID, originName: originName,
		sectors: deviceSize / 512, firstID: rawFirstID}
	if r.ov, err = overlay2.New(filepath.Join(work, overlayDir), driver.Options{}); err != nil {
		return nil, errors.Wrap(err, "overlay2 home")
	}
	return r, nil
}

// cleanup removes the dm devices, pools, overlay mounts and files of a run
// in r.work (an earlier, interrupted one or this one).
func (r *rig) cleanup() error {
	if devs, err := r.dm.ListDevices(); err == nil {
		for _, d := range devs {
			if strings.HasPrefix(d.Name, namePrefix) {
				_ = r.dm.Remove(context.Background(), d.Name, dm.RemoveOptions{})
			}
		}
	}
	if r.ov != nil {
		_ = r.ov.Cleanup(context.Background())
	} else if st, err := os.Stat(filepath.Join(r.work, overlayDir)); err == nil && st.IsDir() {
		if ov, err := overlay2.New(filepath.Join(r.work, overlayDir), driver.Options{}); err == nil {
			_ = ov.Cleanup(context.Background())
		}
	}
	unmountUnder(r.work)
	r.cleanupLVM()
	for _, p := range []**thinpool.Pool{&r.pool, &r.discard} {
		if *p != nil {
			if err := (*p).Destroy(context.Background(), true); err != nil {
				return err
			}
			*p = nil
		}
	}
	for _, d := range []string{poolDir, discardDir} {
		root := filepath.Join(r.work, d)
		if !thinpool.Exists(root) {
			continue
		}
		p, err := thinpool.Open(context.Background(), root, thinpool.OpenOptions{})
		if err != nil {
			return errors.Wrapf(err, "open the leftover pool in %s (remove it by hand)", root)
		}
		if err := p.Destroy(context.Background(), true); err != nil {
			return errors.Wrapf(err, "destroy the leftover pool in %s", root)
		}
	}
	return errors.Wrapf(os.RemoveAll(r.work), "remove %s", r.work)
}

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/overlayfallback/overlay2"
	"github.com/thinctl/thinctl/thinpool"
)

// backend is a layer store as measurements 3-5 use it: writable layers on a
// parent, mounted at a directory.
type backend interface {
	name() string
	create(id, parent string) error
	mount(id string) (string, error)
	unmount(id string) error
	remove(id string) error
	// stored is what the backend has allocated for layer data: the pool's
	// used data bytes (thin) or the allocation under id's upper dir (overlay2).
	stored(id string) (int64, error)
	// fileAlloc is the allocation of the backing file the layer data goes
	// to: the pool's data file (thin), the upper dir again (overlay2).
	fileAlloc(id string) (int64, error)
}

type thinBackend struct{ p *thinpool.Pool }

func (t thinBackend) name() string { return "thin" }
func (t thinBackend) create(id, parent string) error {
	return t.p.Create(context.Background(), id, parent, thinpool.CreateOptions{})
}
func (t thinBackend) mount(id string) (string, error) {
	return t.p.Mount(context.Background(), id, thinpool.MountOptions{})
}
func (t thinBackend) unmount(id string) error { return t.p.Unmount(context.Background(), id) }
func (t thinBackend) remove(id string) error  { return t.p.Remove(context.Background(), id) }
func (t thinBackend) stored(string) (int64, error) {
	s, err := t.p.Status()
	return int64(s.DataUsed), err
}
func (t thinBackend) fileAlloc(string) (int64, error) {
	s, err := t.p.Status()
	if err != nil {
		return 0, err
	}
	return allocatedBytes(s.DataFile)
}

type overlayBackend struct{ d *overlay2.Driver }

func (o overlayBackend) name() string { return "overlay2" }
func (o overlayBackend) create(id, parent string) error {
	if parent == "" {
		return o.d.Create(context.Background(), id, "", nil)
	}
	return o.d.CreateReadWrite(context.Background(), id, parent, nil)
}
func (o overlayBackend) mount(id string) (string, error) {
	return o.d.Get(context.Background(), id, "")
}
func (o overlayBackend) unmount(id string) error { return o.d.Put(context.Background(), id) }
func (o overlayBackend) remove(id string) error  { return o.d.Remove(context.Background(), id) }
func (o overlayBackend) stored(id string) (int64, error) {
	return allocatedBytes(filepath.Join(o.d.Home(), id, "diff"))
}
func (o overlayBackend) fileAlloc(id string) (int64, error) { return o.stored(id) }

func (r *rig) backends() []backend {
	return []backend{thinBackend{r.pool}, overlayBackend{r.ov}}
}

// makeParent creates a read-only-by-convention parent layer holding one
// file of size bytes and leaves it unmounted.
func makeParent(b backend, id, file string, size int64) error {
	if err := b.create(id, ""); err != nil {
		return errors.Wrapf(err, "%s: create parent %s", b.name(), id)
	}
	dir, err := b.mount(id)
	if err != nil {
		return errors.Wrapf(err, "%s: mount parent %s", b.name(), id)
	}
	if err := writePattern(filepath.Join(dir, file), size); err != nil {
		b.unmount(id)
		return err
	}
	return b.unmount(id)
}

const (
	cowParent = "cow-parent"
	pcParent  = "pc-parent"
	bigFile   = "big.bin"
)

// layerCost is measurement 5: create a writable layer on a parent and mount
// it; then unmount and remove it. Backends alternate within a repetition.
func (r *rig) layerCost(reps int) (*LayerCost, error) {
	lc := &LayerCost{}
	for rep := 0; rep < reps; rep++ {
		for _, b := range r.backends() {
			id := fmt.Sprintf("layer-%d", rep)
			t0 := time.Now()
			if err := b.create(id, cowParent); err != nil {
				return lc, errors.Wrapf(err, "%s: create %s", b.name(), id)
			}
			if _, err := b.mount(id); err != nil {
				return lc, errors.Wrapf(err, "%s: mount %s", b.name(), id)
			}
			t1 := time.Now()
			if err := b.unmount(id); err != nil {
				return lc, errors.Wrapf(err, "%s: unmount %s", b.name(), id)
			}
			if err := b.remove(id); err != nil {
				return lc, errors.Wrapf(err, "%s: remove %s", b.name(), id)
			}
			up, down := ms(t1.Sub(t0)), ms(time.Since(t1))
			if b.name() == "thin" {
				lc.ThinCreateMountMs = append(lc.ThinCreateMountMs, up)
				lc.ThinUnmountRemoveMs = append(lc.ThinUnmountRemoveMs, down)
			} else {
				lc.OverlayCreateMountMs = append(lc.OverlayCreateMountMs, up)
				lc.OverlayUnmountRemoves = append(lc.OverlayUnmountRemoves, down)
			}
		}
	}
	r.logf("layer: create+mount thin %.1f ms, overlay2 %.1f ms; unmount+remove thin %.1f ms, overlay2 %.1f ms",
		Median(lc.ThinCreateMountMs), Median(lc.OverlayCreateMountMs), Median(lc.ThinUnmountRemoveMs), Median(lc.OverlayUnmountRemoves))
	return lc, nil
}

// cow is measurement 3: the first 4 KiB write into the middle of a file
// that lives in the parent layer, cold cache, made durable with fsync.
func (r *rig) cow(fileMiB, reps int) (*CoW, error) {
	c := &CoW{FileMiB: fileMiB}
	c.Thin.PoolBlockKiB = int(poolBlock / thinpool.KiB)
	for rep := 0; rep < reps; rep++ {
		for _, b := range r.backends() {
			side := &c.Thin
			if b.name() != "thin" {
				side = &c.Overlay
			}
			if err := r.cowOnce(b, fmt.Sprintf("cow-%d", rep), int64(fileMiB)<<20, side); err != nil {
				return c, err
			}
		}
		r.logf("cow rep %d/%d: thin %.1f ms (%d bytes stored), overlay2 %.1f ms (%d bytes stored)", rep+1, reps,
			c.Thin.LatencyMs[rep], c.Thin.StoreBytes[rep], c.Overlay.LatencyMs[rep], c.Overlay.StoreBytes[rep])
	}
	return c, nil
}

func (r *rig) cowOnce(b backend, id string, size int64, side *CoWSide) error {
	if err := b.create(id, cowParent); err != nil {
		return errors.Wrapf(err, "%s: create %s", b.name(), id)
	}
	dir, err := b.mount(id)
	if err != nil {
		return errors.Wrapf(err, "%s: mount %s", b.name(), id)
	}
	if err := dropCaches(); err != nil {
		return err
	}
	disk0, err1 := diskWrittenBytes(r.work)
	store0, err2 := b.stored(id)
	file0, err3 := b.fileAlloc(id)
	if err := firstErr(err1, err2, err3); err != nil {
		return err
	}
	buf := make([]byte, 4096)
	for i := range buf {
		buf[i] = 0xa5
	}
	t0 := time.Now()
	f, err := os.OpenFile(filepath.Join(dir, bigFile), os.O_WRONLY, 0)
	if err != nil {
		return errors.Wrapf(err, "%s: open for writing", b.name())
	}
	if _, err := f.WriteAt(buf, size/2); err != nil {
		f.Close()
		return errors.Wrapf(err, "%s: write", b.name())
	}
	t1 := time.Now()
	if err := f.Sync(); err != nil {
		f.Close()
		return errors.Wrapf(err, "%s: fsync", b.name())
	}
	if err := f.Close(); err != nil {
		return err
	}
	t2 := time.Now()
	unix.Sync()
	disk1, err1 := diskWrittenBytes(r.work)
	store1, err2 := b.stored(id)
	file1, err3 := b.fileAlloc(id)
	if err := firstErr(err1, err2, err3); err != nil {
		return err
	}
	side.OpenWriteMs = append(side.OpenWriteMs, ms(t1.Sub(t0)))
	side.LatencyMs = append(side.LatencyMs, ms(t2.Sub(t0)))
	side.DiskBytes = append(side.DiskBytes, disk1-disk0)
	side.StoreBytes = append(side.StoreBytes, store1-store0)
	side.FileBytes = append(side.FileBytes, file1-file0)
	if err := b.unmount(id); err != nil {
		return errors.Wrapf(err, "%s: unmount %s", b.name(), id)
	}
	return errors.Wrapf(b.remove(id), "%s: remove %s", b.name(), id)
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// pageCache is measurement 4: layers on one parent are mounted, the cache
// dropped, then each layer reads the parent's file; Cached is sampled after
// each read.
func (r *rig) pageCache(fileMiB, layers int) (*PageCache, error) {
	pc := &PageCache{FileMiB: fileMiB, Layers: layers}
	for _, b := range r.backends() {
		growth, resident, err := r.pageCacheOne(b, layers)
		if err != nil {
			return pc, err
		}
		if b.name() == "thin" {
			pc.Thin, pc.ThinDataFile = growth, resident
		} else {
			pc.Overlay = growth
		}
		r.logf("pagecache %s: %d layers grew Cached by %.1f MiB", b.name(), layers, float64(growth[len(growth)-1])/(1<<20))
	}
	return pc, nil
}

// pageCacheOne returns the Cached growth after each layer's read and, for
// thin, how much of the pool's data file ended up cached.
func (r *rig) pageCacheOne(b backend, layers int) (growth []int64, resident int64, err error) {
	dirs := make([]string, layers)
	for i := range dirs {
		id := fmt.Sprintf("pc-%d", i)
		if err := b.create(id, pcParent); err != nil {
			return nil, 0, errors.Wrapf(err, "%s: create %s", b.name(), id)
		}
		d, err := b.mount(id)
		if err != nil {
			return nil, 0, errors.Wrapf(err, "%s: mount %s", b.name(), id)
		}
		dirs[i] = d
	}
	if err := dropCaches(); err != nil {
		return nil, 0, err
	}
	base, err := cachedBytes()
	if err != nil {
		return nil, 0, err
	}
	for _, d := range dirs {
		if _, err := readAll(filepath.Join(d, bigFile)); err != nil {
			return nil, 0, errors.Wrapf(err, "%s: read", b.name())
		}
		now, err := cachedBytes()
		if err != nil {
			return nil, 0, err
		}
		growth = append(growth, now-base)
	}
	if b.name() == "thin" {
		// Sample the data file's residency before the layers go away.
		if s, err := r.pool.Status(); err == nil {
			resident, _ = residentBytes(s.DataFile)
		}
	}
	for i := range dirs {
		id := fmt.Sprintf("pc-%d", i)
		if err := b.unmount(id); err != nil {
			return nil, 0, errors.Wrapf(err, "%s: unmount %s", b.name(), id)
		}
		if err := b.remove(id); err != nil {
			return nil, 0, errors.Wrapf(err, "%s: remove %s", b.name(), id)
		}
	}
	return growth, resident, nil
}

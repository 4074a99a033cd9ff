package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"strings"
	"time"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/dm"
	"github.com/thinctl/thinctl/fs"
)

// timeBatch runs op for i in [0,n) and returns the mean milliseconds per call.
func timeBatch(n int, op func(i int) error) (float64, error) {
	t0 := time.Now()
	for i := 0; i < n; i++ {
		if err := op(i); err != nil {
			return 0, errors.Wrapf(err, "device %d", i)
		}
	}
	return ms(time.Since(t0)) / float64(n), nil
}

// runPaths measures create (n devices) then remove (the same n) on every
// path, reps times. The paths are interleaved device by device, in an
// order that rotates from one device to the next, so that a change in the
// machine's load hits every path alike. After each repetition done is
// called (nil: nothing), so a long run can report what it has.
func runPaths(paths []opPath, n, reps int, fc flushCounter, logf func(string, ...any), done func(map[string]*PathCost)) (map[string]*PathCost, error) {
	out := map[string]*PathCost{}
	for _, p := range paths {
		out[p.name()] = &PathCost{}
	}
	type tally struct{ ms, meta, disk, settled float64 }
	for rep := 0; rep < reps; rep++ {
		var active []opPath
		for _, p := range paths {
			if l, ok := p.(interface{ maxReps() int }); ok && rep >= l.maxReps() {
				continue
			}
			active = append(active, p)
		}
		create, remove := map[string]*tally{}, map[string]*tally{}
		for _, p := range active {
			create[p.name()], remove[p.name()] = &tally{}, &tally{}
		}
		phase := func(what string, sums map[string]*tally, op func(p opPath, i int) error) error {
			for i := 0; i < n; i++ {
				for k := range active {
					p := active[(k+i+rep)%len(active)]
					m0, d0 := fc.sample()
					t0 := time.Now()
					if err := op(p, i); err != nil {
						return errors.Wrapf(err, "%s %s, device %d, repetition %d", p.name(), what, i, rep+1)
					}
					d := ms(time.Since(t0))
					t := sums[p.name()]
					if s, ok := p.(settler); ok && what == "remove" {
						// The space is returned in the background: wait
						// until the pool says it is, and count that apart.
						if err := s.settle(); err != nil {
							return errors.Wrapf(err, "%s %s, device %d, repetition %d: waiting for the space to be returned", p.name(), what, i, rep+1)
						}
						t.settled += ms(time.Since(t0))
					}
					m1, d1 := fc.sample()
					t.ms, t.meta, t.disk = t.ms+d, t.meta+float64(m1-m0), t.disk+float64(d1-d0)
				}
			}
			return nil
		}
		if err := phase("create", create, func(p opPath, i int) error { return p.create(i) }); err != nil {
			return out, err
		}
		if err := phase("remove", remove, func(p opPath, i int) error { return p.remove(i) }); err != nil {
			return out, err
		}
		f := float64(n)
		for _, p := range active {
			c, r, pc := create[p.name()], remove[p.name()], out[p.name()]
			pc.CreateMs = append(pc.CreateMs, c.ms/f)
			pc.RemoveMs = append(pc.RemoveMs, r.ms/f)
			pc.CreateMetaFlushes = append(pc.CreateMetaFlushes, c.meta/f)
			pc.RemoveMetaFlushes = append(pc.RemoveMetaFlushes, r.meta/f)
			pc.CreateDiskFlushes = append(pc.CreateDiskFlushes, c.disk/f)
			pc.RemoveDiskFlushes = append(pc.RemoveDiskFlushes, r.disk/f)
			if _, ok := p.(settler); ok {
				pc.RemoveSettledMs = append(pc.RemoveSettledMs, r.settled/f)
			}
			logf("rep %d/%d %-16s create+activate %7.2f ms/device, deactivate+delete %7.2f ms/device; metadata flushes %.1f/%.1f, disk flushes %.1f/%.1f per device",
				rep+1, reps, p.name(), c.ms/f, r.ms/f, c.meta/f, r.meta/f, c.disk/f, r.disk/f)
		}
		if done != nil {
			done(out)
		}
	}
	return out, nil
}

// settler is a path whose remove returns before the space is given back
// (thinpool's background discards): settle waits until the pool's status
// no longer reports space being returned.
type settler interface{ settle() error }

// opCost is measurement 1.
// The discards-on path runs in the first discardReps repetitions only: it
// is context for the reader, not one of the compared figures.
func (r *rig) opCost(n, reps, discardReps int, done func(*OpCost)) (*OpCost, error) {
	paths := []opPath{
		&libPath{label: PathLibrary, pool: r.pool, parent: originID, prefix: "op-"},
		&dmsetupPath{rawPool: r.raw, prefix: namePrefix + "dmsetup-"},
		&floorPath{rawPool: withFirstID(r.raw, rawFirstID+0x100000), c: r.dm, prefix: namePrefix + "floor-"},
	}
	var dis opPath = newDiscardPath(&libPath{label: PathLibraryDiscard, pool: r.discard, parent: originID, prefix: "op-"})
	switch {
	case discardReps >= reps:
		paths = append(paths, dis)
	case discardReps > 0:
		paths = append(paths, limited{dis, discardReps}) // not settled: context only
	}
	pc, err := runPaths(paths, n, reps, r.newFlushCounter(), r.logf, func(pc map[string]*PathCost) {
		if done != nil {
			done(&OpCost{Devices: n, Paths: pc})
		}
	})
	return &OpCost{Devices: n, Paths: pc}, err
}

// limited is a path that runs in the first reps repetitions only.
type limited struct {
	opPath
	reps int
}

func (l limited) maxReps() int { return l.reps }

func withFirstID(p rawPool, first uint32) rawPool { p.firstID = first; return p }

// profileLibrary runs n library create+activate and deactivate+remove
// cycles under the CPU profiler and returns the profile (gzipped protobuf).
func (r *rig) profileLibrary(n int) ([]byte, error) {
	path := filepath.Join(r.work, "cpu.pprof")
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	lib := &libPath{label: PathLibrary, pool: r.pool, parent: originID, prefix: "prof-"}
	_, err = timeBatch(n, lib.create)
	if err == nil {
		_, err = timeBatch(n, lib.remove)
	}
	pprof.StopCPUProfile()
	f.Close()
	if err != nil {
		return nil, errors.Wrap(err, "profiled library run")
	}
	return os.ReadFile(path)
}

// medianOf times fn reps times and returns the median milliseconds.
func medianOf(reps int, fn func(i int) error) (float64, error) {
	xs := make([]float64, 0, reps)
	for i := 0; i < reps; i++ {
		t0 := time.Now()
		if err := fn(i); err != nil {
			return 0, err
		}
		xs = append(xs, ms(time.Since(t0)))
	}
	return Median(xs), nil
}

// breakdown times, one at a time, the pieces a library create or remove is
// made of, so the gap to the floor can be attributed.
func (r *rig) breakdown(reps int) ([]Component, error) {
	var out []Component
	add := func(name, note string, fn func(i int) error) error {
		m, err := medianOf(reps, fn)
		if err != nil {
			return errors.Wrapf(err, "breakdown %s", name)
		}
		out = append(out, Component{Name: name, Ms: m, Note: note})
		r.logf("breakdown %-28s %8.3f ms", name, m)
		return nil
	}
	pool := r.raw.poolName
	id := func(i int) uint32 { return rawFirstID + 0x200000 + uint32(i) }
	steps := []struct {
		name, note string
		fn         func(i int) error
	}{
		{"dm_status_ioctl", "DM_TABLE_STATUS of the pool without flags: a thin pool commits its metadata first", func(int) error {
			_, err := r.dm.Status(pool, dm.StatusOptions{})
			return err
		}},
		{"dm_status_noflush", "the same ioctl with DM_NOFLUSH_FLAG: the pool skips its metadata commit", func(int) error {
			_, err := r.dm.Status(pool, dm.StatusOptions{NoFlush: true})
			return err
		}},
		{"dm_info_ioctl", "DM_DEV_STATUS of one device", func(int) error {
			_, err := r.dm.Info(pool)
			return err
		}},
		{"msg_create_snap", "pool message create_snap (one metadata commit)", func(i int) error {
			_, err := r.dm.Message(pool, 0, dm.ThinCreateSnap(id(i), r.raw.originID))
			return err
		}},
		{"msg_delete", "pool message delete (one metadata commit)", func(i int) error {
			_, err := r.dm.Message(pool, 0, dm.ThinDelete(id(i)))
			return err
		}},
		{"durable_write", "registry-style file write: temp file, write, fsync, rename, fsync dir", func(i int) error {
			return durableWrite(filepath.Join(r.work, registryFile), i)
		}},
		{"durable_remove", "registry-style remove: unlink, fsync dir", func(i int) error {
			return durableRemove(filepath.Join(r.work, registryFile), i)
		}},
		{"is_mounted", "fs.IsMounted (reads /proc/self/mountinfo)", func(int) error {
			_, err := fs.IsMounted(filepath.Join(r.work, "nowhere"))
			return err
		}},
		{"dmsetup_true", "fork+exec of `dmsetup version` (the fixed price of each dmsetup step)", func(int) error {
			_, err := dmsetup("version")
			return err
		}},
	}
	if err := os.MkdirAll(filepath.Join(r.work, registryFile), fileMode); err != nil {
		return nil, err
	}
	for _, s := range steps {
		if err := add(s.name, s.note, s.fn); err != nil {
			return out, err
		}
	}
	return out, nil
}

var recordBody = []byte(strings.Repeat(`{"version":1,"id":"0123456789abcdef","device_id":42,"size":1073741824}`, 4) + "\n")

func durableWrite(dir string, i int) error {
	tmp, err := os.CreateTemp(dir, ".rec.tmp-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(recordBody); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, fmt.Sprintf("rec-%d.json", i))); err != nil {
		return err
	}
	return syncDir(dir)
}

func durableRemove(dir string, i int) error {
	if err := os.Remove(filepath.Join(dir, fmt.Sprintf("rec-%d.json", i))); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// unmountUnder lazily unmounts every mount at or below dir, deepest first.
func unmountUnder(dir string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return
	}
	ms, err := fs.ParseMountInfo(f)
	f.Close()
	if err != nil {
		return
	}
	abs, _ := filepath.Abs(dir)
	var targets []string
	for _, m := range ms {
		if m.MountPoint == abs || strings.HasPrefix(m.MountPoint, abs+"/") {
			targets = append(targets, m.MountPoint)
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(targets)))
	for _, t := range targets {
		_ = fs.Unmount(t, fs.UnmountOptions{Lazy: true})
	}
}

// newDiscardPath is the library path on the pool with discards on (the
// default). Remove hands the device's space back in the background, so
// the path is a settler: settle waits until the pool's status no longer
// counts devices returning space, which remove_discard_vs_floor prices.
func newDiscardPath(l *libPath) opPath { return discardPath{l} }

// settleLimit bounds the wait for a removed device's space to come back.
const settleLimit = 2 * time.Minute

type discardPath struct{ *libPath }

// settle waits with Pool.ReturnSpace, which blocks on the background
// return until it is done (and then makes one more pass of its own, over
// nothing), and then reads Status, which must count no device returning
// space. It used to poll Status every millisecond: each poll takes the
// root lock and reads the pool's status, and on the 2-CPU guest the
// polling competed with the very return it was timing.
func (d discardPath) settle() error {
	ctx, cancel := context.WithTimeout(context.Background(), settleLimit)
	defer cancel()
	if err := d.pool.ReturnSpace(ctx); err != nil {
		return err
	}
	st, err := d.pool.Status()
	if err != nil {
		return err
	}
	if st.ReturningDevices != 0 {
		return errors.Errorf("%d devices still returning space after ReturnSpace (last error: %q)", st.ReturningDevices, st.ReturnError)
	}
	return nil
}

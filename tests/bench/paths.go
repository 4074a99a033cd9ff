package main

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/dm"
	"github.com/thinctl/thinctl/thinpool"
)

// opPath is one way of making and dropping thin snapshots of one origin:
// create is create_snap + activate of device i, remove is deactivate +
// delete of it.
type opPath interface {
	name() string
	create(i int) error
	remove(i int) error
}

// libPath goes through the thinpool library: Pool.Create + Pool.Activate,
// Pool.Deactivate + Pool.Remove, with the registry durable on disk.
type libPath struct {
	label  string
	pool   *thinpool.Pool
	parent string
	prefix string
}

func (l *libPath) name() string       { return l.label }
func (l *libPath) id(i int) string    { return l.prefix + strconv.Itoa(i) }
func (l *libPath) remove(i int) error { return l.removeID(l.id(i)) }

func (l *libPath) create(i int) error {
	id := l.id(i)
	if err := l.pool.Create(context.Background(), id, l.parent, thinpool.CreateOptions{}); err != nil {
		return err
	}
	_, err := l.pool.Activate(context.Background(), id)
	return err
}

func (l *libPath) removeID(id string) error {
	if err := l.pool.Deactivate(context.Background(), id); err != nil {
		return err
	}
	return l.pool.Remove(context.Background(), id)
}

// thinTarget is the table line of a thin device of sectors in pool.
func thinTarget(sectors uint64, pool string, devID uint32) dm.Target {
	return dm.Target{Start: 0, Length: sectors, Type: "thin", Params: pool + " " + strconv.FormatUint(uint64(devID), 10)}
}

// rawPool is what the dmsetup and floor paths need to know about the pool
// they share with the library: its name, device number, the origin's thin
// id and dm name, and the size of a device.
type rawPool struct {
	poolName   string
	poolDev    uint64
	originID   uint32
	originName string
	sectors    uint64
	firstID    uint32 // thin ids firstID+i are used, far above the library's
}

func (r rawPool) devID(i int) uint32 { return r.firstID + uint32(i) }

// dmsetupPath runs dmsetup processes the way containerd's devmapper
// snapshotter does: `dmsetup info` on the origin (suspend/resume around the
// snapshot only when it is active), `dmsetup message <pool> 0 create_snap`,
// `dmsetup create --table`; `dmsetup remove`, `dmsetup message ... delete`.
// With plain set it is the operator's two processes, `dmsetup message` +
// `dmsetup create` (measurement 6).
type dmsetupPath struct {
	rawPool
	prefix string
	plain  bool
}

func (d *dmsetupPath) name() string {
	if d.plain {
		return PathDmsetupCLI
	}
	return PathDmsetup
}

func (d *dmsetupPath) devName(i int) string { return d.prefix + strconv.Itoa(int(d.devID(i))) }

func dmsetup(args ...string) (string, error) {
	out, err := exec.Command("dmsetup", args...).CombinedOutput()
	if err != nil {
		return string(out), errors.Errorf("dmsetup %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

func (d *dmsetupPath) create(i int) error {
	// containerd checks whether the parent is activated with `dmsetup info`
	// and suspends it around create_snap only then; an operator who knows
	// the origin is inactive (plain) does not.
	if !d.plain {
		attr, err := dmsetup("info", "-c", "--noheadings", "-o", "attr", d.originName)
		if err == nil && strings.HasPrefix(strings.TrimSpace(attr), "L") && !strings.Contains(attr, "s") {
			if _, err := dmsetup("suspend", d.originName); err != nil {
				return err
			}
			defer dmsetup("resume", d.originName)
		}
	}
	id := d.devID(i)
	if _, err := dmsetup("message", d.poolName, "0", dm.ThinCreateSnap(id, d.originID)); err != nil {
		return err
	}
	t := thinTarget(d.sectors, "/dev/mapper/"+d.poolName, id)
	_, err := dmsetup("create", d.devName(i), "--table", fmt.Sprintf("%d %d %s %s", t.Start, t.Length, t.Type, t.Params))
	return err
}

func (d *dmsetupPath) remove(i int) error {
	if _, err := dmsetup("remove", d.devName(i)); err != nil {
		return err
	}
	_, err := dmsetup("message", d.poolName, "0", dm.ThinDelete(d.devID(i)))
	return err
}

// floorPath is the bare ioctl sequence with no registry: the least any
// tool can do (Message create_snap, Create, LoadTable, Resume; Remove,
// Message delete).
type floorPath struct {
	rawPool
	c      *dm.Client
	prefix string
}

func (f *floorPath) name() string { return PathFloor }

func (f *floorPath) devName(i int) string { return f.prefix + strconv.Itoa(int(f.devID(i))) }

func (f *floorPath) create(i int) error {
	id := f.devID(i)
	if _, err := f.c.Message(f.poolName, 0, dm.ThinCreateSnap(id, f.originID)); err != nil {
		return err
	}
	name := f.devName(i)
	if _, err := f.c.Create(name, dm.CreateOptions{}); err != nil {
		return err
	}
	pool := fmt.Sprintf("%d:%d", unix.Major(f.poolDev), unix.Minor(f.poolDev))
	if err := f.c.LoadTable(name, []dm.Target{thinTarget(f.sectors, pool, id)}, dm.LoadOptions{}); err != nil {
		return err
	}
	// The floor resumes as thinpool resumes a thin device: with udev, the
	// dm rules skip their disk rules (no blkid probe, no by-uuid links).
	return f.c.ResumeWith(context.Background(), name, dm.ResumeOptions{NoDiskRules: true})
}

func (f *floorPath) remove(i int) error {
	if err := f.c.Remove(context.Background(), f.devName(i), dm.RemoveOptions{}); err != nil {
		return err
	}
	_, err := f.c.Message(f.poolName, 0, dm.ThinDelete(f.devID(i)))
	return err
}

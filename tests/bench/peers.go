package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/dm"
	"github.com/thinctl/thinctl/loopback"
	"github.com/thinctl/thinctl/tests/bench/lvmpeer"
)

// Measurement 6: the tools an operator would pick instead, command against
// command, one process per action, in the same guest and run.

// runCmd runs a program and returns its trimmed stdout; the error names the
// command line and carries its output.
func runCmd(env []string, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", errors.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()+string(out)))
	}
	return strings.TrimSpace(string(out)), nil
}

// cliPath runs one thinctl process per action on the library's root:
// `thinctl create ID --parent origin --activate`, `thinctl remove ID`
// (which deactivates, then deletes).
type cliPath struct {
	exe  string
	root string
	dm   *dm.Client
}

func (c *cliPath) name() string    { return PathCLI }
func (c *cliPath) id(i int) string { return "cli-" + strconv.Itoa(i) }

func (c *cliPath) thinctl(args ...string) (string, error) {
	return runCmd(nil, c.exe, append([]string{"--root", c.root, "--driver", "devicemapper"}, args...)...)
}

func (c *cliPath) create(i int) error {
	dev, err := c.thinctl("create", c.id(i), "--parent", originID, "--activate")
	if err != nil {
		return err
	}
	return requireThin(c.dm, strings.TrimPrefix(dev, "/dev/mapper/"), "thinctl create --activate printed "+dev)
}

func (c *cliPath) remove(i int) error {
	_, err := c.thinctl("remove", c.id(i))
	return err
}

// procFloorPath runs the process floor (tests/bench/procfloor, the binary
// thinctl-procfloor) once per action: the same kernel work as one thinctl
// process (message create_snap, create, load, resume; remove, message
// delete) in the least a Go process can be, with no registry. Its create
// is checked like thinctl's, so both sides pay the same check.
type procFloorPath struct {
	rawPool
	exe    string
	prefix string
	dm     *dm.Client
}

// procFloorProgram is the process floor's binary, looked up on PATH (the
// VM script ships it beside thinctl).
const procFloorProgram = "thinctl-procfloor"

func (f *procFloorPath) name() string         { return PathProcFloor }
func (f *procFloorPath) devName(i int) string { return f.prefix + strconv.Itoa(int(f.devID(i))) }

func (f *procFloorPath) create(i int) error {
	id := strconv.FormatUint(uint64(f.devID(i)), 10)
	poolDev := fmt.Sprintf("%d:%d", unix.Major(f.poolDev), unix.Minor(f.poolDev))
	dev, err := runCmd(nil, f.exe, "create", f.poolName, poolDev, strconv.FormatUint(uint64(f.originID), 10), id,
		f.devName(i), strconv.FormatUint(f.sectors, 10))
	if err != nil {
		return err
	}
	return requireThin(f.dm, strings.TrimPrefix(dev, "/dev/mapper/"), procFloorProgram+" create printed "+dev)
}

func (f *procFloorPath) remove(i int) error {
	_, err := runCmd(nil, f.exe, "remove", f.poolName, f.devName(i), strconv.FormatUint(uint64(f.devID(i)), 10))
	return err
}

// requireThin checks that name is an active device-mapper device with one
// thin target (DM_TABLE_STATUS, what `dmsetup table` reads).
func requireThin(c *dm.Client, name, what string) error {
	t, err := c.Table(name, dm.TableOptions{})
	if err != nil {
		return errors.Wrapf(err, "%s: no active device %s", what, name)
	}
	if len(t) != 1 || t[0].Type != "thin" {
		return errors.Errorf("%s: %s's table is %v, want one thin target", what, name, t)
	}
	return nil
}

// lvm names and geometry: the same sizes and chunk size as thinctl's pool.
const (
	lvmVG      = "thinctlbench"
	lvmPool    = "pool"
	lvmOrigin  = "origin"
	lvmDir     = "lvm"          // LVM_SYSTEM_DIR and the PV's file, under the work dir
	lvmPVExtra = 64 * (1 << 20) // room for the VG's metadata beyond data + metadata LVs
	lvmProgram = "lvm"          // lvm2's multi-call binary
)

// lvmPath drives lvm2 from Debian's package: a thin pool LV on a loop
// device of the same size and chunk size as thinctl's pool, a thin LV
// with ext4 (inactive, like thinctl's origin), and per snapshot
// `lvcreate -s -kn -ay` of it and `lvremove -f`.
type lvmPath struct {
	env  []string // LVM_SYSTEM_DIR of our own: nothing read from or left in /etc/lvm
	loop string   // the PV
	dm   *dm.Client
}

func (l *lvmPath) name() string        { return PathLVM }
func (l *lvmPath) lv(i int) string     { return "snap" + strconv.Itoa(i) }
func (l *lvmPath) dmName(i int) string { return lvmVG + "-" + l.lv(i) }

func (l *lvmPath) lvm(args ...string) (string, error) { return runCmd(l.env, lvmProgram, args...) }

func (l *lvmPath) create(i int) error {
	// lvm 2.03 checks for the old snapshot target (dm-snapshot) before it
	// sees that the origin is thin: the guest loads that module too.
	if _, err := l.lvm("lvcreate", "-q", "-s", "-kn", "-ay", "-n", l.lv(i), lvmVG+"/"+lvmOrigin); err != nil {
		return err
	}
	return requireThin(l.dm, l.dmName(i), "lvcreate -s -kn -ay")
}

func (l *lvmPath) remove(i int) error {
	if _, err := l.lvm("lvremove", "-q", "-f", lvmVG+"/"+l.lv(i)); err != nil {
		return err
	}
	if _, err := l.dm.Info(l.dmName(i)); !errors.Is(err, dm.ErrNotFound) {
		return errors.Errorf("lvremove -f %s/%s: device %s still there (%v)", lvmVG, l.lv(i), l.dmName(i), err)
	}
	return nil
}

// setupLVM makes the lvm peer's volume group under work; nil, nil when
// lvm2 is not installed (the peer is skipped, the report says so).
func (r *rig) setupLVM() (*lvmPath, error) {
	if _, err := exec.LookPath(lvmProgram); err != nil {
		return nil, nil
	}
	dir := filepath.Join(r.work, lvmDir)
	if err := os.MkdirAll(filepath.Join(dir, "lock"), fileMode); err != nil {
		return nil, err
	}
	file := filepath.Join(dir, "pv.img")
	f, err := os.Create(file)
	if err != nil {
		return nil, err
	}
	err = f.Truncate(int64(poolDataSize + poolMetaSize + lvmPVExtra))
	f.Close()
	if err != nil {
		return nil, err
	}
	loop, err := loopback.Attach(context.Background(), file, loopback.Options{})
	if err != nil {
		return nil, errors.Wrap(err, "lvm peer: attach the PV's loop device")
	}
	r.lvmLoop = loop.Path
	if err := os.WriteFile(filepath.Join(dir, "lvm.conf"), []byte(lvmpeer.Config(loop.Path, dir)), 0o600); err != nil {
		return nil, err
	}
	l := &lvmPath{env: []string{"LVM_SYSTEM_DIR=" + dir, "LVM_SUPPRESS_FD_WARNINGS=1"}, loop: loop.Path, dm: r.dm}
	steps := [][]string{
		{"pvcreate", "-q", "-y", loop.Path},
		{"vgcreate", "-q", lvmVG, loop.Path},
		// Zeroing off like thinctl's skip_block_zeroing; no spare
		// metadata LV (thinctl keeps none); discards passed down as
		// thinctl's pool does.
		{"lvcreate", "-q", "--type", "thin-pool", "-L", fmt.Sprintf("%dm", poolDataSize>>20),
			"--poolmetadatasize", fmt.Sprintf("%dm", poolMetaSize>>20), "--chunksize", fmt.Sprintf("%dk", poolBlock>>10),
			"--zero", "n", "--poolmetadataspare", "n", "-n", lvmPool, lvmVG},
		{"lvcreate", "-q", "-V", fmt.Sprintf("%dm", deviceSize>>20), "-T", lvmVG + "/" + lvmPool, "-n", lvmOrigin},
	}
	for _, s := range steps {
		if _, err := l.lvm(s...); err != nil {
			return nil, errors.Wrap(err, "lvm peer")
		}
	}
	origin := "/dev/mapper/" + lvmVG + "-" + lvmOrigin
	if _, err := runCmd(nil, "mkfs.ext4", "-q", "-F", "-E", "nodiscard", origin); err != nil {
		return nil, errors.Wrap(err, "lvm peer")
	}
	if _, err := l.lvm("lvchange", "-q", "-an", lvmVG+"/"+lvmOrigin); err != nil {
		return nil, errors.Wrap(err, "lvm peer")
	}
	version, _ := l.lvm("version")
	if v, _, ok := strings.Cut(version, "\n"); ok {
		version = v
	}
	r.logf("lvm peer: %s; thin pool %s/%s on %s", strings.TrimSpace(version), lvmVG, lvmPool, loop.Path)
	return l, nil
}

// cleanupLVM removes the lvm peer's volume group and loop device (a
// native run; the VM is thrown away).
func (r *rig) cleanupLVM() {
	dir := filepath.Join(r.work, lvmDir)
	if _, err := os.Stat(filepath.Join(dir, "lvm.conf")); err == nil {
		env := []string{"LVM_SYSTEM_DIR=" + dir}
		_, _ = runCmd(env, lvmProgram, "vgremove", "-q", "-ff", lvmVG)
	}
	if devs, err := r.dm.ListDevices(); err == nil {
		for _, d := range devs {
			if strings.HasPrefix(d.Name, lvmVG+"-") {
				_ = r.dm.Remove(context.Background(), d.Name, dm.RemoveOptions{})
			}
		}
	}
	if r.lvmLoop != "" {
		_ = loopback.Detach(context.Background(), r.lvmLoop)
		r.lvmLoop = ""
	}
}

// peers is measurement 6: thinctl processes, dmsetup processes and lvm2,
// interleaved device by device like measurement 1.
func (r *rig) peers(n, reps int) (*OpCost, []string, error) {
	var notes []string
	paths := []opPath{&dmsetupPath{rawPool: withFirstID(r.raw, rawFirstID+0x300000), prefix: namePrefix + "cli-", plain: true}}
	if exe, err := exec.LookPath("thinctl"); err == nil {
		paths = append(paths, &cliPath{exe: exe, root: filepath.Join(r.work, poolDir), dm: r.dm})
	} else {
		notes = append(notes, "measurement 6: no thinctl binary on PATH; its command-line path was skipped")
	}
	if exe, err := exec.LookPath(procFloorProgram); err == nil {
		paths = append(paths, &procFloorPath{rawPool: withFirstID(r.raw, rawFirstID+0x400000), exe: exe,
			prefix: namePrefix + "procfloor-", dm: r.dm})
	} else {
		notes = append(notes, "measurement 6: no "+procFloorProgram+" binary on PATH; the process floor was skipped")
	}
	l, err := r.setupLVM()
	if err != nil {
		return nil, notes, err
	}
	if l != nil {
		paths = append(paths, l)
	} else {
		notes = append(notes, "measurement 6: lvm2 is not installed; its path was skipped")
	}
	pc, err := runPaths(paths, n, reps, r.newFlushCounter(), r.logf, nil)
	if err != nil {
		// Leave no device behind for the measurements that follow (scale
		// takes the pool down).
		for _, p := range paths {
			for i := 0; i < n; i++ {
				_ = p.remove(i)
			}
		}
		return nil, notes, err
	}
	return &OpCost{Devices: n, Paths: pc}, notes, nil
}

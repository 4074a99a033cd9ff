package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/dm"
	"github.com/thinctl/thinctl/internal/testenv"
	"github.com/thinctl/thinctl/thinpool"
)

// Ways to fill the pool for measurement 2.
const (
	// PopulateRaw sends create_snap messages of the origin with the dm
	// client (one metadata commit each) and writes the registry records in
	// the documented format (docs/registry.md) without fsync, then syncs
	// once and reopens the pool so that the library indexes them.
	PopulateRaw = "raw"
	// PopulateLibrary calls Pool.Create for each device.
	PopulateLibrary = "library"
	// PopulateRestore takes the pool down, adds empty thin devices to its
	// metadata with thin_dump/thin_restore, writes their registry records
	// like PopulateRaw and opens the pool again: no metadata commit per
	// device, so 10,000 devices take seconds even under emulation.
	PopulateRestore = "restore"
)

const (
	fillChunk   = 500              // Creates one Fill entry averages over
	fillFirstID = uint32(0x400000) // thin ids of raw-filled devices
)

// scale is measurement 2: the pool is filled with inactive snapshots of the
// origin up to each level in turn; at each level ops devices are
// created+activated and deactivated+removed through the library, reps
// times. Then the pool is closed and opened again, openReps times.
func (r *rig) scale(levels []int, ops, reps, openReps int, method string) (*Scale, error) {
	s := &Scale{}
	have := 0
	for _, level := range levels {
		t0 := time.Now()
		for have < level {
			from, to := have, min(level, (have/fillChunk+1)*fillChunk)
			if method == PopulateRestore {
				to = level // one thin_dump/thin_restore round per level
			}
			c0 := time.Now()
			if err := r.fill(from, to, method); err != nil {
				return s, err
			}
			have = to
			s.Populate = append(s.Populate, Fill{From: from, To: to, Ms: ms(time.Since(c0)) / float64(to-from)})
		}
		lv := ScaleLevel{Devices: level}
		if method == PopulateRaw || method == PopulateRestore {
			// The first Open converts the version 1 records fill wrote
			// (docs/registry.md, "Migration from version 1"); the second
			// is the one measured.
			if _, err := r.reopen(); err != nil {
				return s, err
			}
			unix.Sync()
			open, err := r.reopen()
			if err != nil {
				return s, err
			}
			lv.OpenMs = open
		}
		r.logf("scale: pool holds %d devices (+origin), filled (%s) in %s", have, method, time.Since(t0).Round(time.Millisecond))
		devDir := filepath.Join(r.work, poolDir, "devicemapper", "devices")
		lv.ReadDirMs, _ = medianOf(5, func(int) error { _, err := os.ReadDir(devDir); return err })
		lib := &libPath{label: PathLibrary, pool: r.pool, parent: originID, prefix: "scale-"}
		pc, err := runPaths([]opPath{lib}, ops, reps, r.newFlushCounter(), r.logf, nil)
		if err != nil {
			return s, errors.Wrapf(err, "at %d devices", level)
		}
		lv.CreateMs, lv.RemoveMs = pc[PathLibrary].CreateMs, pc[PathLibrary].RemoveMs
		s.Levels = append(s.Levels, lv)
	}
	if len(levels) == 0 {
		return s, nil
	}
	s.OpenAt = have
	for i := 0; i < openReps; i++ {
		open, err := r.reopen()
		if err != nil {
			return s, err
		}
		s.OpenMs = append(s.OpenMs, open)
		r.logf("scale: thinpool.Open with %d devices took %.1f ms", have, open)
	}
	for i := 0; i < openReps; i++ {
		p, err := r.probe()
		if err != nil {
			return s, err
		}
		s.Probes = append(s.Probes, p)
		r.logf("scale: a fresh process opened the root (%d devices) in %.1f ms, listed it in %.1f ms, exited after %.0f ms; peak RSS %.1f MiB",
			p.Devices, p.OpenMs, p.ListMs, p.ProcessMs, float64(p.MaxRSSKiB)/1024)
	}
	return s, nil
}

// reopen closes the library pool (if open) and times thinpool.Open of its
// root.
func (r *rig) reopen() (float64, error) {
	if r.pool != nil {
		if err := r.pool.Close(); err != nil {
			return 0, err
		}
		r.pool = nil
	}
	t0 := time.Now()
	p, err := thinpool.Open(context.Background(), filepath.Join(r.work, poolDir), thinpool.OpenOptions{})
	if err != nil {
		return 0, errors.Wrap(err, "open the pool")
	}
	r.pool = p
	d := ms(time.Since(t0))
	if info, err := r.dm.Info(r.raw.poolName); err == nil {
		r.raw.poolDev = info.Dev // a pool brought up again has a new minor
	}
	return d, nil
}

// fillRecord is a registry record as docs/registry.md documents it, with
// the fields a fresh snapshot sets (absent ones read as false or empty).
type fillRecord struct {
	Version     int       `json:"version"`
	ID          string    `json:"id"`
	DeviceID    uint32    `json:"device_id"`
	Size        uint64    `json:"size"`
	Initialized bool      `json:"initialized"`
	Parent      string    `json:"parent"`
	Created     time.Time `json:"created"`
}

func fillID(i int) string { return fmt.Sprintf("fill-%05d", i) }

// fill adds devices [from,to) to the library pool.
func (r *rig) fill(from, to int, method string) error {
	if method == PopulateLibrary {
		for i := from; i < to; i++ {
			if err := r.pool.Create(context.Background(), fillID(i), originID, thinpool.CreateOptions{}); err != nil {
				return errors.Wrapf(err, "populate device %d", i)
			}
		}
		return nil
	}
	st, err := r.pool.Status()
	if err != nil {
		return err
	}
	if method == PopulateRestore {
		if err := r.restoreDevices(st.MetadataFile, st.TransactionID, from, to); err != nil {
			return err
		}
	}
	root := filepath.Join(r.work, poolDir)
	if err := toV1(root); err != nil {
		return err
	}
	dir := filepath.Join(root, "devicemapper", "devices")
	for i := from; i < to; i++ {
		devID := fillFirstID + uint32(i)
		if method == PopulateRaw {
			if _, err := r.dm.Message(r.raw.poolName, 0, dm.ThinCreateSnap(devID, r.raw.originID)); err != nil {
				return errors.Wrapf(err, "populate device %d", i)
			}
		}
		rec := fillRecord{Version: 1, ID: fillID(i), DeviceID: devID, Size: deviceSize,
			Initialized: true, Parent: originID, Created: time.Now().UTC()}
		b, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, rec.ID+".json"), append(b, '\n'), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// toV1 turns the version 2 registry of root back into version 1 files
// (pool.json at version 1, devices/<id>.json for every record), so that the
// records fill writes as files join them and the next Open converts them
// all. The library keeps no version 1 writer; this is the format
// docs/registry.md documents.
func toV1(root string) error {
	dir := filepath.Join(root, "devicemapper")
	if _, err := os.Stat(filepath.Join(dir, "registry")); os.IsNotExist(err) {
		return os.MkdirAll(filepath.Join(dir, "devices"), 0o700) // version 1 already
	}
	docs, err := testenv.RegistryDocuments(root)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, "devices"), 0o700); err != nil {
		return err
	}
	v1 := func(b []byte) ([]byte, error) {
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, err
		}
		m["version"] = 1
		out, err := json.Marshal(m)
		return append(out, '\n'), err
	}
	for id, b := range docs {
		out, err := v1(b)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "devices", id+".json"), out, 0o600); err != nil {
			return err
		}
	}
	pool, err := os.ReadFile(filepath.Join(dir, "pool.json"))
	if err != nil {
		return err
	}
	if pool, err = v1(pool); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "pool.json"), pool, 0o600); err != nil {
		return err
	}
	for _, f := range []string{"registry", "journal"} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil {
			return err
		}
	}
	return nil
}

// restoreDevices takes the pool down and adds empty thin devices
// fillFirstID+[from,to) to its metadata file with thin_dump and
// thin_restore. The caller opens the pool again.
func (r *rig) restoreDevices(metaFile string, txid uint64, from, to int) error {
	if err := r.pool.Down(context.Background()); err != nil {
		return errors.Wrap(err, "take the pool down to add devices")
	}
	if err := r.pool.Close(); err != nil {
		return err
	}
	r.pool = nil
	dump, err := exec.Command("thin_dump", metaFile).Output()
	if err != nil {
		return errors.Wrapf(err, "thin_dump %s", metaFile)
	}
	xml, err := addThinDevices(string(dump), txid, fillFirstID+uint32(from), to-from)
	if err != nil {
		return err
	}
	x := filepath.Join(r.work, "fill.xml")
	if err := os.WriteFile(x, []byte(xml), 0o600); err != nil {
		return err
	}
	defer os.Remove(x)
	if out, err := exec.Command("thin_restore", "-i", x, "-o", metaFile).CombinedOutput(); err != nil {
		return errors.Errorf("thin_restore -i %s -o %s: %v: %s", x, metaFile, err, out)
	}
	return nil
}

// addThinDevices inserts n empty devices with ids first.. into a thin_dump
// XML document, before its closing superblock tag.
func addThinDevices(xml string, txid uint64, first uint32, n int) (string, error) {
	i := strings.LastIndex(xml, "</superblock>")
	if i < 0 {
		return "", errors.New("thin_dump output has no </superblock>")
	}
	var b strings.Builder
	b.WriteString(xml[:i])
	for k := 0; k < n; k++ {
		fmt.Fprintf(&b, "  <device dev_id=\"%d\" mapped_blocks=\"0\" transaction=\"%d\" creation_time=\"0\" snap_time=\"0\">\n  </device>\n", first+uint32(k), txid)
	}
	b.WriteString(xml[i:])
	return b.String(), nil
}

// defaultPopulate is restore when the thin tools are installed, else raw.
func defaultPopulate() string {
	for _, t := range []string{"thin_dump", "thin_restore"} {
		if _, err := exec.LookPath(t); err != nil {
			return PopulateRaw
		}
	}
	return PopulateRestore
}

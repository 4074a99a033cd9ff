package store

import (
	"encoding/json"
	"os"
	"path/filepath"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/internal/atomicfile"
	"github.com/thinctl/thinctl/internal/failpoint"
)

// Migrate converts a version 1 root (pool.json at version 1, devices/,
// transaction.json) to version 3, under the root lock, in steps that a
// crash can interrupt anywhere:
//
//  1. read every v1 record and the open transaction; anything corrupt
//     refuses, naming the file, and nothing is written;
//  2. write a new, empty journal (atomically);
//  3. write the registry file with every record and the transaction
//     (atomically), under a new epoch;
//  4. rewrite pool.json at version 3 (atomically): the switch. Before it
//     the root is version 1, untouched (the new files are ignored and made
//     again by the next attempt); after it, version 3 is complete;
//  5. remove the v1 files (removeV1Leftovers; Open repeats it when a crash
//     left some).
//
// cfg is pool.json as read; the registry is left unloaded.
func (r *Store) Migrate(cfg Config) error {
	v1 := v1Registry{dir: r.dir}
	recs, err := v1.List()
	if err != nil {
		return err
	}
	tx, err := v1.LeftTx()
	if err != nil {
		return err
	}
	r.Close()
	if err := r.WriteFresh(recs, tx, max(cfg.NextDeviceID, cfg.BaseDeviceID+1), func(step string) {
		failpoint.Inject(map[string]string{"journal": failpoint.MigrateAfterJrnl, "registry": failpoint.MigrateAfterSnap}[step])
	}); err != nil {
		return errors.Wrap(err, "convert the registry to version 3")
	}
	if err := r.SaveConfig(cfg); err != nil {
		return errors.Wrap(err, "convert the registry to version 3")
	}
	failpoint.Inject(failpoint.MigrateAfterPool)
	return r.RemoveV1Leftovers()
}

// WriteFresh writes a new journal and a registry file holding recs and the
// open transaction tx (nil: none), each atomically, for migration and
// Adopt; next is the lowest allocation hint. after, if set, runs after
// each file ("journal", "registry"). pool.json is the caller's.
func (r *Store) WriteFresh(recs []Device, tx *Tx, next uint32, after func(step string)) error {
	var body []byte
	for _, d := range recs {
		d.Version = RecordVersion
		b, err := json.Marshal(d)
		if err != nil {
			return errors.Wrapf(err, "registry: encode the record of %q", d.ID)
		}
		body = appendEntry(body, entryPut, b)
		if d.DeviceID < MaxDeviceID {
			next = max(next, d.DeviceID+1)
		}
	}
	if tx != nil {
		t := *tx
		t.Version = RecordVersion
		b, err := json.Marshal(t)
		if err != nil {
			return errors.Wrap(err, "registry: encode the open transaction")
		}
		body = appendEntry(body, entryBegin, b)
		if t.DeviceID < MaxDeviceID {
			next = max(next, t.DeviceID+1)
		}
	}
	if next > MaxDeviceID {
		next = 1
	}
	if err := r.writeJournal(); err != nil {
		return err
	}
	if after != nil {
		after("journal")
	}
	if err := r.writeRegistryFile(newEpoch(0), next, body, atomicfile.Options{}); err != nil {
		return err
	}
	if after != nil {
		after("registry")
	}
	return nil
}

// RemoveV1Leftovers removes what migration left of version 1 (the files
// are never read again once pool.json says version 2 or 3). Cheap when there
// is nothing: one failed open.
func (r *Store) RemoveV1Leftovers() error {
	v1 := v1Registry{dir: r.dir}
	if err := os.Remove(v1.txPath()); err != nil && !os.IsNotExist(err) {
		return errors.Wrapf(err, "remove %s", v1.txPath())
	}
	dir := v1.devicesDir()
	d, err := os.Open(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return errors.Wrapf(err, "open %s", dir)
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return errors.Wrapf(err, "read %s", dir)
	}
	for _, n := range names {
		if err := os.Remove(filepath.Join(dir, n)); err != nil && !os.IsNotExist(err) {
			return errors.Wrapf(err, "remove %s", filepath.Join(dir, n))
		}
	}
	if err := os.Remove(dir); err != nil && !os.IsNotExist(err) {
		return errors.Wrapf(err, "remove %s", dir)
	}
	return errors.Wrap(atomicfile.SyncDir(r.dir), "registry")
}

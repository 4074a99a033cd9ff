package store

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
)

// What Pool asks of the index, and the thin ids it hands out. Every
// method here reads the index as the last Refresh (or any other call that
// catches up) left it; the caller holds the root lock.

// Children returns how many records name id as their parent.
func (r *Store) Children(id string) int { return r.idx.children[id] }

// IDOf returns the key of the record that has thin id devID.
func (r *Store) IDOf(devID uint32) (string, bool) {
	id, ok := r.idx.byDevID[devID]
	return id, ok
}

// Deleted returns the ids of the records marked deleted (removal
// deferred), sorted.
func (r *Store) Deleted() []string { return sortedKeys(r.idx.deleted) }

// Returning returns the keys of the records of removed devices whose space
// is still being reclaimed, sorted.
func (r *Store) Returning() []string { return sortedKeys(r.idx.returning) }

// ReturningCount is len(Returning()).
func (r *Store) ReturningCount() int { return len(r.idx.returning) }

func sortedKeys(m map[string]bool) []string { return slices.Sorted(maps.Keys(m)) }

// SetBase names the base device's thin id (pool.json's): always used,
// whatever the records say (from now on, or from the first load).
func (r *Store) SetBase(devID uint32) {
	r.idx.base = devID
	if r.idx.used != nil {
		r.idx.used.set(devID)
	}
}

// AllocID hands out the first free thin id at or after the allocation
// hint and marks it used.
func (r *Store) AllocID() (uint32, error) { return r.idx.used.alloc() }

// FreeID marks thin id devID free again (a create that did not happen),
// unless an open transaction keeps it.
func (r *Store) FreeID(devID uint32) {
	if r.pending[devID] == nil {
		r.idx.used.clear(devID)
	}
}

// Hint is where the next thin id search starts; 0 before the first load.
func (r *Store) Hint() uint32 {
	if r.idx.used == nil {
		return 0
	}
	return r.idx.hint()
}

// RaiseHint moves the allocation hint up to h (pool.json's next thin id,
// say); a lower h, or one beyond MaxDeviceID, changes nothing.
func (r *Store) RaiseHint(h uint32) {
	if r.idx.used != nil && h > r.idx.used.next && h <= MaxDeviceID {
		r.idx.used.setHint(h)
	}
}

// RemoveDuplicate removes the record of id, which names the same thin id
// as keeper's (a hand-over a crash interrupted left both): the thin id
// stays used, and keeper's.
func (r *Store) RemoveDuplicate(id string, keeper Device) error {
	if err := r.Remove(id); err != nil {
		return err
	}
	r.idx.used.set(keeper.DeviceID)
	r.idx.byDevID[keeper.DeviceID] = keeper.ID
	return nil
}

// Pending returns the open transaction of thin id devID.
func (r *Store) Pending(devID uint32) (Tx, bool) {
	t := r.pending[devID]
	if t == nil {
		return Tx{}, false
	}
	return *t, true
}

// Arrive counts a create that will begin a transaction soon, so that a
// flush about to start waits for it (see flushGroup); the function it
// returns uncounts it.
func (r *Store) Arrive() func() { return r.group.Arrive() }

// Flushes counts the fdatasync and fsync calls the store made itself
// (atomicfile's are not counted).
func Flushes() int64 { return flushes.Load() }

// RemoveFiles removes the registry file and the journal of dir (what an
// Init that failed made); pool.json and the lock file are the caller's.
func RemoveFiles(dir string) {
	os.Remove(filepath.Join(dir, journalFileName))
	os.Remove(filepath.Join(dir, registryFileName))
}

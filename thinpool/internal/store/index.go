package store

import (
	"encoding/json"
	"sort"
)

// index is the store's in-memory state: every device record (with
// its encoding, so a compaction writes it without encoding it again) and
// what operations look up without scanning: the used thin ids, the record
// of each thin id, each device's number of snapshots and the devices whose
// removal is deferred. The store keeps it current (Store.Refresh).
type index struct {
	recs     map[string]recEntry
	used     *idBitmap
	byDevID  map[uint32]string
	children map[string]int
	// deleted holds the ids whose records are marked deleted (removal
	// deferred), so GC need not look at every record.
	deleted map[string]bool
	// returning holds the keys of the records of removed devices whose
	// space is still being returned (thinpool reclaims it; see its remove_return.go).
	returning map[string]bool
	base      uint32 // the base device's thin id (pool.json), always used
}

// recEntry is one record and its JSON encoding (the body of its put
// entry), nil until it is needed.
type recEntry struct {
	rec Device
	enc []byte
}

func newIndex() *index {
	return &index{recs: map[string]recEntry{}, used: newIDBitmap(), byDevID: map[uint32]string{},
		children: map[string]int{}, deleted: map[string]bool{}, returning: map[string]bool{}}
}

// replace takes over the state of x (a fresh load), keeping the base
// device and an allocation hint at least next.
func (x *index) replace(y *index, next uint32) {
	base := x.base
	*x = *y
	x.base = base
	if base != 0 {
		x.used.set(base)
		x.noteAllocated(base)
	}
	if next > x.used.next {
		x.used.setHint(next)
	}
}

// addEncoded adds or replaces a record whose encoding is enc (nil:
// unknown).
func (x *index) addEncoded(d Device, enc []byte) {
	if old, ok := x.recs[d.ID]; ok {
		x.removeID(old.rec.ID)
	}
	x.recs[d.ID] = recEntry{rec: d, enc: enc}
	x.used.set(d.DeviceID)
	x.noteAllocated(d.DeviceID)
	x.byDevID[d.DeviceID] = d.ID
	if d.Parent != "" {
		x.children[d.Parent]++
	}
	switch {
	case d.ReturningSpace:
		x.returning[d.ID] = true
	case d.Deleted:
		x.deleted[d.ID] = true
	}
}

// removeID removes the record of id, if any.
func (x *index) removeID(id string) {
	e, ok := x.recs[id]
	if !ok {
		return
	}
	d := e.rec
	delete(x.recs, id)
	if d.DeviceID != x.base {
		x.used.clear(d.DeviceID)
	}
	if x.byDevID[d.DeviceID] == id {
		delete(x.byDevID, d.DeviceID)
	}
	delete(x.deleted, id)
	delete(x.returning, id)
	if d.Parent != "" {
		if x.children[d.Parent]--; x.children[d.Parent] <= 0 {
			delete(x.children, d.Parent)
		}
	}
}

// noteAllocated moves the allocation hint past devID: thin ids are handed
// out in increasing order (wrapping at 2^24), so an id is not used again
// soon after a create that may have reached the pool was undone.
func (x *index) noteAllocated(devID uint32) {
	if devID >= x.used.next && devID < MaxDeviceID {
		x.used.setHint(devID + 1)
	}
}

// hint is where the next thin id search starts.
func (x *index) hint() uint32 { return x.used.next }

// sortedIDs returns every record's id in order.
func (x *index) sortedIDs() []string {
	ids := make([]string, 0, len(x.recs))
	for id := range x.recs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// encoded returns the JSON encoding of id's record, encoding it once.
func (x *index) encoded(id string) []byte {
	e := x.recs[id]
	if e.enc == nil {
		e.rec.Version = RecordVersion
		e.enc, _ = json.Marshal(e.rec)
		x.recs[id] = e
	}
	return e.enc
}

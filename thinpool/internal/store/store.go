package store

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/errdefs"
	"github.com/thinctl/thinctl/internal/atomicfile"
	"github.com/thinctl/thinctl/internal/failpoint"
)

// The store's file names under <root>/devicemapper; docs/registry.md
// describes them.
const (
	PoolFileName     = "pool.json"
	registryFileName = "registry"
	journalFileName  = "journal"
	LockFileName     = "lock"
)

// defaultJournalSize is the journal's preallocated size: about 8,000
// creates and removes between compactions.
const defaultJournalSize = 4 << 20

// Store keeps the device records of one root: pool.json (the pool's
// configuration, written rarely and atomically), the registry file (every
// record as of the last compaction) and the journal (the changes since,
// each a checksummed frame made durable by one fdatasync). Its in-memory
// state is the index; every method first catches up with what other
// processes appended (the lock file's change counter says when). Callers
// hold the root lock.
type Store struct {
	dir string     // <root>/devicemapper
	lk  *Lock      // nil when no other process can share the root (tests)
	idx *index     // the records and what is derived from them
	jf  *os.File   // the journal, open while loaded
	buf []byte     // read buffer, reused
	err error      // a failed flush: the journal's state on disk is unknown
	st  journalPos // where this process is in the journal

	loaded bool
	holds  uint64 // lk.holds when last caught up
	gen    uint64 // the lock file's change counter when last caught up
	// pending holds the open transactions by thin id: this process's in
	// flight, other processes' in flight, and those crashed processes left.
	pending txSet
	// inTx is set while this hold runs transaction txID's message (or a
	// recovery of it): put and remove then collect their entries in txBuf,
	// written with its end entry.
	inTx  bool
	txID  uint32
	txBuf []byte
	// owned holds the claims of this store's transactions in flight
	// (begun, not ended); it outlives reloads. Guarded by the root lock.
	owned map[uint32]*Claim
	// group lets this store's transactions share journal flushes.
	group flushGroup
	// journalSize is the size a new journal gets (defaultJournalSize).
	journalSize int64
}

// journalPos is where the journal stands.
type journalPos struct {
	epoch    uint64 // of the registry file and of the frames that follow it
	next     uint32 // allocation hint stored in the registry file
	capacity int64
	pos      int64  // where the next frame goes
	seq      uint64 // the last frame's sequence number
	synced   int64  // the journal is durable up to here
}

// New returns the store of dir (<root>/devicemapper), unloaded: the
// first call reads it. lk is the root's lock, nil when no other process
// can share the root.
func New(dir string, lk *Lock) *Store {
	return &Store{dir: dir, lk: lk, idx: &index{}, journalSize: defaultJournalSize}
}

// ConfigPath is pool.json's path.
func (r *Store) ConfigPath() string   { return filepath.Join(r.dir, PoolFileName) }
func (r *Store) registryPath() string { return filepath.Join(r.dir, registryFileName) }

// JournalPath is the journal's path.
func (r *Store) JournalPath() string { return filepath.Join(r.dir, journalFileName) }

// registryWrite is how pool.json and the registry file are written:
// atomically and durably, with the crash tests' failpoints around the rename.
var registryWrite = atomicfile.Options{
	BeforeRename: func() { failpoint.Inject(failpoint.RegistryBeforeRen) },
	AfterRename:  func() { failpoint.Inject(failpoint.RegistryAfterRen) },
}

// compactWrite is how a compaction writes the registry file.
var compactWrite = atomicfile.Options{
	BeforeRename: func() { failpoint.Inject(failpoint.CompactBeforeRen) },
	AfterRename:  func() { failpoint.Inject(failpoint.CompactAfterRen) },
}

// flushes counts the fdatasync and fsync calls the store makes itself
// (atomicfile's are not counted); tests read it.
var flushes atomic.Int64

// writeJSON marshals v and writes it atomically.
func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return errors.Wrapf(err, "registry: encode %s", path)
	}
	return errors.Wrap(atomicfile.Write(path, append(data, '\n'), registryWrite), "registry")
}

// LoadConfig reads pool.json; ErrNotInitialized when it does not exist. A
// version 1 pool.json is accepted (Open migrates the root).
func (r *Store) LoadConfig() (Config, error) {
	var p Config
	path := r.ConfigPath()
	if err := readJSON(path, &p); err != nil {
		if os.IsNotExist(err) {
			return p, errors.Wrapf(ErrNotInitialized, "%s does not exist", path)
		}
		return p, err
	}
	if err := checkVersion(path, p.Version, V1, V2, Version); err != nil {
		return p, err
	}
	if p.PoolName == "" || p.Key == "" || p.BlockSize == 0 || p.BaseDeviceID == 0 || p.BaseDeviceID > MaxDeviceID {
		return p, errors.Wrapf(ErrCorrupt, "%s lacks pool_name, key, block_size or a valid base_device_id", path)
	}
	return p, nil
}

// SaveConfig writes pool.json at the current version.
func (r *Store) SaveConfig(p Config) error {
	p.Version = Version
	return writeJSON(r.ConfigPath(), p)
}

// corrupt is ErrCorrupt naming a registry file.
func corrupt(path string, err error) error {
	return errdefs.Wrapf(ErrCorrupt, err, "%s: %v; restore it from a backup (it is never rewritten)", path, err)
}

// newEpoch returns a random non-zero epoch different from old: frames of
// another epoch (and bytes a caller could place in a label) are never
// taken for frames of this one.
func newEpoch(old uint64) uint64 {
	for {
		var b [8]byte
		_, _ = rand.Read(b[:])
		if e := binary.LittleEndian.Uint64(b[:]); e != 0 && e != old {
			return e
		}
	}
}

// Create makes an empty registry (Init): a journal of journalSize zeroed
// bytes and a registry file naming a new epoch, each written atomically.
// Anything left by an earlier, failed Init is replaced.
func (r *Store) Create() error {
	r.Close()
	if err := r.writeJournal(); err != nil {
		return err
	}
	e := newEpoch(0)
	if err := r.writeRegistryFile(e, 0, nil, atomicfile.Options{}); err != nil {
		return err
	}
	return r.reload()
}

// writeJournal writes a new, empty journal atomically: its header and
// zeros, so that appends overwrite blocks that exist and fdatasync has no
// file size or extent to commit.
func (r *Store) writeJournal() error {
	size := r.journalSize
	if size < 64<<10 {
		size = 64 << 10
	}
	data := make([]byte, size)
	copy(data, encodeJournalHeader(size))
	return errors.Wrap(atomicfile.Write(r.JournalPath(), data, atomicfile.Options{}), "registry")
}

// writeRegistryFile writes the registry file: recs (nil: none), their epoch
// and the allocation hint.
func (r *Store) writeRegistryFile(epoch uint64, next uint32, body []byte, opts atomicfile.Options) error {
	n := 0
	if body != nil {
		items, err := parseEntries(body)
		if err != nil {
			return errors.Wrap(err, "registry: encode the registry file")
		}
		n = len(items)
	}
	data := encodeRegistryFile(epoch, next, n, body)
	return errors.Wrap(atomicfile.Write(r.registryPath(), data, opts), "registry")
}

// Close drops the in-memory state and the journal's handle.
func (r *Store) Close() {
	if r.jf != nil {
		r.jf.Close()
		r.jf = nil
	}
	r.loaded, r.pending, r.inTx, r.txBuf, r.err = false, nil, false, nil, nil
}

// Invalidate drops what this process holds in memory (records collected
// for a transaction's end among them): the next call reads everything from
// disk again.
func (r *Store) Invalidate() {
	r.Close()
}

// Get returns one device record; ErrNotFound when there is
// none.
func (r *Store) Get(id string) (Device, error) {
	if err := r.Refresh(); err != nil {
		return Device{}, err
	}
	d, ok := r.idx.recs[id]
	if !ok {
		return Device{}, errors.Wrapf(ErrNotFound, "device %q", id)
	}
	return d.rec, nil
}

// Put adds or replaces one device record: a durable frame of its
// own, or, inside a transaction, an entry of the transaction's end frame.
func (r *Store) Put(d Device) error { return r.putDevice(nil, d) }

// putDevice is Put with entries that go first in the same frame.
func (r *Store) putDevice(first []byte, d Device) error {
	if err := r.Refresh(); err != nil {
		return err
	}
	d.Version = RecordVersion
	body, err := json.Marshal(d)
	if err != nil {
		return errors.Wrapf(err, "registry: encode the record of %q", d.ID)
	}
	if r.inTx {
		r.txBuf = appendEntry(append(r.txBuf, first...), entryPut, body)
	} else if err := r.appendFrame(appendEntry(first, entryPut, body), true); err != nil {
		return err
	}
	r.idx.addEncoded(d, body)
	return nil
}

// Move removes the record of oldID and adds d (with the same thin
// id) in one durable journal frame: the removal first, so that replaying
// the frame leaves the thin id marked used.
func (r *Store) Move(oldID string, d Device) error {
	if err := r.Refresh(); err != nil {
		return err
	}
	r.idx.removeID(oldID)
	err := r.putDevice(appendEntry(nil, entryDel, []byte(oldID)), d)
	if err != nil {
		r.Invalidate() // the old record is gone from memory only
	}
	return err
}

// Remove removes one device record (durably, or inside a
// transaction with its end).
func (r *Store) Remove(id string) error {
	if err := r.Refresh(); err != nil {
		return err
	}
	if r.inTx {
		r.txBuf = appendEntry(r.txBuf, entryDel, []byte(id))
	} else if err := r.appendFrame(appendEntry(nil, entryDel, []byte(id)), true); err != nil {
		return err
	}
	r.idx.removeID(id)
	return nil
}

// List returns every device record, sorted by id.
func (r *Store) List() ([]Device, error) {
	if err := r.Refresh(); err != nil {
		return nil, err
	}
	ids := r.idx.sortedIDs()
	out := make([]Device, len(ids))
	for i, id := range ids {
		out[i] = r.idx.recs[id].rec
	}
	return out, nil
}

// Count returns how many records there are.
func (r *Store) Count() (int, error) {
	if err := r.Refresh(); err != nil {
		return 0, err
	}
	return len(r.idx.recs), nil
}

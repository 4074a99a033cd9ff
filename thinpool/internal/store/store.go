package store

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"sync/atomic"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

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
	// owned holds the claims of this registry's transactions in flight
	// (begun, not ended); it outlives reloads. Guarded by the root lock.
	owned map[uint32]*Claim
	// group lets this registry's transactions share journal flushes.
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

// flushes counts the fdatasync and fsync calls the registry makes itself
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

// Refresh loads the registry, or catches up with what other processes
// appended since this one last looked. Cheap when nothing changed: the
// first call under a lock hold reads the lock file's counter, later ones
// do nothing.
func (r *Store) Refresh() error {
	if r.loaded && (r.lk == nil || r.holds == r.lk.holds) {
		return nil
	}
	if r.lk == nil {
		return r.reload()
	}
	gen, epoch, err := r.lk.state()
	if err != nil {
		return err
	}
	switch {
	case !r.loaded || epoch != r.st.epoch:
		err = r.reload()
	case gen != r.gen:
		err = r.catchUp()
	}
	if err != nil {
		r.Close()
		return err
	}
	r.gen, r.holds = gen, r.lk.holds
	if epoch != r.st.epoch {
		// A compaction that crashed before its rename, or an old lock file:
		// name the epoch on disk so the next look is cheap again.
		return r.lk.setEpoch(r.st.epoch)
	}
	return nil
}

// reload reads the registry file and the journal from scratch.
func (r *Store) reload() error {
	r.Close()
	regData, err := os.ReadFile(r.registryPath())
	if err != nil {
		return errdefs.Wrapf(ErrCorrupt, err, "%s: %v", r.registryPath(), err)
	}
	regFile, err := parseRegistryFile(regData)
	if err != nil {
		return corrupt(r.registryPath(), err)
	}
	f, err := os.OpenFile(r.JournalPath(), os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return errdefs.Wrapf(ErrCorrupt, err, "%s: %v", r.JournalPath(), err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return errors.Wrapf(err, "registry: stat %s", r.JournalPath())
	}
	scan, capacity, release, err := readJournal(f, st.Size(), regFile.epoch)
	if err != nil {
		f.Close()
		return corrupt(r.JournalPath(), err)
	}
	defer release() // the frames' entries alias what it read
	x := newIndex()
	pending := txSet{}
	if err = applyEntries(x, pending, regFile.items, r.registryPath()); err != nil {
		f.Close()
		return err
	}
	next := regFile.next
	for _, fr := range scan.frames {
		if err = applyEntries(x, pending, fr.items, r.JournalPath()); err != nil {
			f.Close()
			return err
		}
	}
	if scan.torn > scan.tail {
		// Frames whose fdatasync never completed lie beyond the chain's
		// end: zero them durably before anything is appended there.
		if _, err := f.WriteAt(make([]byte, scan.torn-scan.tail), scan.tail); err != nil {
			f.Close()
			return errors.Wrapf(err, "registry: clear the torn tail of %s", r.JournalPath())
		}
		if err := fdatasync(f); err != nil {
			f.Close()
			return errors.Wrapf(err, "registry: fdatasync %s", r.JournalPath())
		}
	}
	r.st = journalPos{epoch: regFile.epoch, next: next, capacity: capacity, pos: scan.tail, synced: journalHeaderSize}
	if n := len(scan.frames); n > 0 {
		last := scan.frames[n-1]
		r.st.seq, r.st.synced = last.seq, last.synced
	}
	if scan.torn > scan.tail {
		r.st.synced = scan.tail
	}
	r.jf, r.pending, r.loaded = f, pending, true
	r.idx.replace(x, next)
	return nil
}

// readJournal reads as much of the journal as the chain and the window
// beyond it need (a journal that was compacted not long ago is read in
// its first 640 KiB, not its whole size) and scans it. The scan's frames
// alias the bytes read until release is called. The file is mapped rather
// than read where it can be: copying 640 KiB into fresh memory cost every
// process that opens the root a page fault per 4 KiB (several ms under
// qemu's emulation), and a mapping of the page cache faults a few times.
func readJournal(f *os.File, size int64, epoch uint64) (scan journalScan, capacity int64, release func(), err error) {
	release = func() {}
	var hdr [journalHeaderSize]byte
	if _, err := f.ReadAt(hdr[:], 0); err != nil {
		return journalScan{}, 0, release, errors.Errorf("%d bytes long, shorter than its %d-byte header", size, journalHeaderSize)
	}
	capacity, err = parseJournalHeader(hdr[:], size)
	if err != nil {
		return journalScan{}, 0, release, err
	}
	var mapped []byte
	if capacity <= 1<<30 {
		if m, merr := unix.Mmap(int(f.Fd()), 0, int(capacity), unix.PROT_READ, unix.MAP_SHARED); merr == nil {
			mapped = m
			release = func() { _ = unix.Munmap(m) }
		}
	}
	n := min(capacity, scanWindow+128<<10)
	for {
		var data []byte
		if mapped != nil {
			data = mapped[:n]
		} else {
			data = make([]byte, n)
			if _, err := f.ReadAt(data, 0); err != nil {
				return journalScan{}, 0, release, errors.Wrap(err, "read")
			}
		}
		scan, err = scanJournal(data, epoch)
		if n == capacity || scan.tail+scanWindow <= n {
			return scan, capacity, release, err
		}
		n = min(capacity, max(2*n, scan.tail+scanWindow))
	}
}

// catchUp reads the frames other processes appended after this one's
// position (same epoch: no compaction happened).
func (r *Store) catchUp() error {
	for {
		var h [frameHeaderSize]byte
		if _, err := r.jf.ReadAt(h[:], r.st.pos); err != nil {
			return nil // the end of the file
		}
		n := int(binary.LittleEndian.Uint32(h[4:]))
		if binary.LittleEndian.Uint32(h[0:]) != frameMagic || n == 0 || n > maxFramePayload ||
			r.st.pos+frameSize(n) > r.st.capacity {
			return nil
		}
		size := frameSize(n)
		if int64(cap(r.buf)) < size {
			r.buf = make([]byte, size)
		}
		b := r.buf[:size]
		if _, err := r.jf.ReadAt(b, r.st.pos); err != nil {
			return nil
		}
		fr, ok := parseFrameAt(b, 0, r.st.epoch)
		if !ok || fr.seq != r.st.seq+1 {
			return nil
		}
		if err := applyEntries(r.idx, r.pending, fr.items, r.JournalPath()); err != nil {
			return err
		}
		r.st.pos += size
		r.st.seq = fr.seq
		r.st.synced = max(r.st.synced, fr.synced)
	}
}

// txSet holds open transactions by thin id.
type txSet map[uint32]*Tx

// sorted returns the transactions in thin id order.
func (ts txSet) sorted() []Tx {
	out := make([]Tx, 0, len(ts))
	for _, t := range ts {
		out = append(out, *t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].DeviceID < out[j].DeviceID })
	return out
}

// applyEntries applies decoded entries to x and to pending, the open
// transactions (updated in place).
func applyEntries(x *index, pending txSet, items []entry, path string) error {
	for _, it := range items {
		switch it.kind {
		case entryPut:
			var d Device
			if err := json.Unmarshal(it.body, &d); err != nil {
				return corrupt(path, errors.Wrap(err, "a device record does not decode"))
			}
			if err := checkVersion(path, d.Version, RecordVersion); err != nil {
				return err
			}
			if err := validateDeviceRecord(path, d.ID, d); err != nil {
				return err
			}
			x.addEncoded(d, append([]byte(nil), it.body...))
		case entryDel:
			x.removeID(string(it.body))
		case entryBegin:
			var t Tx
			if err := json.Unmarshal(it.body, &t); err != nil {
				return corrupt(path, errors.Wrap(err, "a transaction does not decode"))
			}
			if err := checkVersion(path, t.Version, RecordVersion); err != nil {
				return err
			}
			if err := t.Validate(); err != nil {
				return corrupt(path, err)
			}
			if o := pending[t.DeviceID]; o != nil {
				return corrupt(path, errors.Errorf("a transaction (%s of thin id %d) begins while another of the same thin id (%s) is open",
					t.Op, t.DeviceID, o.Op))
			}
			x.noteAllocated(t.DeviceID)
			pending[t.DeviceID] = &t
		case entryEnd:
			switch len(it.body) {
			case 1: // version 2: ends the one open transaction
				if len(pending) > 1 {
					return corrupt(path, errors.Errorf("an end entry without a thin id while %d transactions are open", len(pending)))
				}
				clear(pending)
			case 5:
				delete(pending, binary.LittleEndian.Uint32(it.body[1:]))
			default:
				return corrupt(path, errors.Errorf("an end entry of %d bytes", len(it.body)))
			}
		}
	}
	return nil
}

// fdatasync makes f's data durable (and counts the flush).
func fdatasync(f *os.File) error {
	flushes.Add(1)
	for {
		err := unix.Fdatasync(int(f.Fd()))
		if err != unix.EINTR {
			return err
		}
	}
}

// appendFrame writes the entries in payload as one frame at the end of
// the journal, compacting first when it does not fit; with durable, one
// fdatasync makes it (and every frame before it) durable before it
// returns. The change counter is advanced first, so another process never
// misses a frame. A failed write or flush leaves the journal unusable by
// this handle (the next call reads it again from disk).
func (r *Store) appendFrame(payload []byte, durable bool) error {
	if r.err != nil {
		return r.err
	}
	size := frameSize(len(payload))
	if len(payload) > maxFramePayload {
		return errors.Errorf("registry: a change of %d bytes is larger than the %d a journal frame holds", len(payload), maxFramePayload)
	}
	if r.st.pos+size > r.st.capacity {
		if err := r.Compact(); err != nil {
			return err
		}
		if r.st.pos+size > r.st.capacity {
			return errors.Errorf("registry: a change of %d bytes does not fit in the %d-byte journal %s", len(payload), r.st.capacity, r.JournalPath())
		}
	}
	if err := r.bump(r.st.epoch); err != nil {
		return err
	}
	b := encodeFrame(r.st.epoch, r.st.seq+1, r.st.synced, payload)
	if _, err := r.jf.WriteAt(b, r.st.pos); err != nil {
		r.err = errors.Wrapf(err, "registry: write %s", r.JournalPath())
		return r.err
	}
	failpoint.Inject(failpoint.JournalAfterWrite)
	if durable {
		if err := fdatasync(r.jf); err != nil {
			r.err = errors.Wrapf(err, "registry: fdatasync %s", r.JournalPath())
			return r.err
		}
	}
	r.st.seq++
	r.st.pos += size
	if durable {
		r.st.synced = r.st.pos
	}
	return nil
}

// bump advances the lock file's change counter (naming epoch) and keeps
// this process current.
func (r *Store) bump(epoch uint64) error {
	if r.lk == nil {
		return nil
	}
	gen, err := r.lk.bump(r.gen, epoch)
	if err != nil {
		return err
	}
	r.gen = gen
	return nil
}

// Compact writes every record into a new registry file with a new epoch
// (atomically: the rename is the one step that switches from the old
// file and journal to the new file and an empty journal, whose old frames
// now belong to another epoch) and starts the journal over. An open
// transaction goes into the file as a begin entry.
func (r *Store) Compact() error {
	body := r.encodeState()
	e := newEpoch(r.st.epoch)
	next := r.idx.hint()
	if err := r.bump(e); err != nil {
		return err
	}
	if err := r.writeRegistryFile(e, next, body, compactWrite); err != nil {
		return err
	}
	r.st = journalPos{epoch: e, next: next, capacity: r.st.capacity, pos: journalHeaderSize, synced: journalHeaderSize}
	return nil
}

// encodeState encodes every record (in id order) and the open
// transactions (in thin id order) as the body of a registry file.
func (r *Store) encodeState() []byte {
	ids := r.idx.sortedIDs()
	var body []byte
	for _, id := range ids {
		body = appendEntry(body, entryPut, r.idx.encoded(id))
	}
	for _, t := range r.pending.sorted() {
		b, _ := json.Marshal(t)
		body = appendEntry(body, entryBegin, b)
	}
	return body
}

// Open compacts a journal whose chain is at least ReplayCompactFrames
// frames long and replayCompactRatio times the number of records (churn:
// devices created and removed again), so that a process's Open replays a
// short journal: replaying a frame costs about what loading a record from
// the registry file does, and each create or remove appends two.
const (
	ReplayCompactFrames = 64
	replayCompactRatio  = 4
)

// replayLong reports whether Open should compact (see ReplayCompactFrames).
func (r *Store) replayLong() bool {
	return r.loaded && len(r.pending) == 0 && !r.inTx && r.err == nil &&
		r.st.seq >= ReplayCompactFrames && r.st.seq >= replayCompactRatio*uint64(len(r.idx.recs))
}

// CompactLongReplay compacts a journal whose replay has grown long (see
// ReplayCompactFrames), for Open: every process that opens the root
// replays the journal, one JSON decode per record written since the last
// compaction, so a journal of many more frames than there are records is
// compacted now (crash-safe like any compaction) and later ones read it
// short. A failure changes nothing on disk; the next Open tries again.
func (r *Store) CompactLongReplay() {
	if r.replayLong() {
		if err := r.Compact(); err != nil {
			r.Invalidate()
		}
	}
}

// JournalFrames is how many frames the journal holds since the last
// compaction.
func (r *Store) JournalFrames() uint64 { return r.st.seq }

// CompactNow compacts unless the journal is empty (Down does this).
func (r *Store) CompactNow() error {
	if err := r.Refresh(); err != nil {
		return err
	}
	if r.st.pos == journalHeaderSize {
		return nil
	}
	return r.Compact()
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

// LeftTx returns an open transaction a crashed process left (the one of
// the lowest thin id); nil when there is none. Transactions whose owner is
// alive (this registry's, or another's that holds its claim) are in
// flight, not left: it passes over them.
func (r *Store) LeftTx() (*Tx, error) {
	ts, err := r.LeftTxs()
	if err != nil || len(ts) == 0 {
		return nil, err
	}
	return &ts[0], nil
}

// LeftTxs returns the open transactions whose owner is gone, in thin id
// order. The caller holds the root lock, so an owner that is alive holds
// its claim (taken before its begin entry was written, let go after its
// end entry).
func (r *Store) LeftTxs() ([]Tx, error) {
	if err := r.Refresh(); err != nil {
		return nil, err
	}
	var out []Tx
	for _, t := range r.pending.sorted() {
		if r.owned[t.DeviceID] != nil {
			continue
		}
		if r.lk != nil {
			c, err := r.lk.tryClaimTx(t.DeviceID)
			if err != nil {
				return nil, err
			}
			if c == nil {
				continue // in flight in another process or Pool
			}
			c.Release()
		}
		out = append(out, t)
	}
	return out, nil
}

// PendingCreate reports whether an open transaction creates registry id
// id.
func (r *Store) PendingCreate(id string) bool {
	for _, t := range r.pending {
		if t.Op != OpDelete && t.ID == id {
			return true
		}
	}
	return false
}

// PendingChildren returns how many open transactions create a snapshot of
// registry id id.
func (r *Store) PendingChildren(id string) int {
	n := 0
	for _, t := range r.pending {
		if t.Device != nil && t.Device.Parent == id {
			n++
		}
	}
	return n
}

// encodeTx makes t's begin entry.
func encodeTx(t *Tx) ([]byte, error) {
	t.Version = RecordVersion
	if t.Device != nil {
		d := *t.Device
		d.Version = RecordVersion
		t.Device = &d
	}
	body, err := json.Marshal(t)
	if err != nil {
		return nil, errors.Wrap(err, "registry: encode the transaction")
	}
	return appendEntry(nil, entryBegin, body), nil
}

// Begin makes transaction t durable before its message is sent: a begin
// entry (carrying the new device's record for a create) in a frame of its
// own, flushed. Until End or Abort, Put and Remove add
// their entries to the transaction's end frame. The caller holds the root
// Lock from here to the end.
func (r *Store) Begin(t Tx) error {
	if err := r.beginTx(&t, true); err != nil {
		return err
	}
	r.enterTx(t.DeviceID)
	return nil
}

// beginTx writes t's begin frame (flushed when durable) and records t as
// open.
func (r *Store) beginTx(t *Tx, durable bool) error {
	if err := r.Refresh(); err != nil {
		return err
	}
	if o := r.pending[t.DeviceID]; o != nil {
		return errors.Errorf("registry: a transaction (%s of thin id %d) is still open", o.Op, o.DeviceID)
	}
	payload, err := encodeTx(t)
	if err != nil {
		return err
	}
	if err := r.appendFrame(payload, durable); err != nil {
		return err
	}
	r.idx.noteAllocated(t.DeviceID)
	r.pending[t.DeviceID] = t
	return nil
}

// Ticket is a transaction begun without a flush (BeginShared): what its
// owner waits for before it may send the message.
type Ticket struct {
	devID  uint32
	epoch  uint64 // of the journal the begin frame went to
	end    int64  // the journal offset after it
	f      *os.File
	claim  *Claim
	ticket uint64 // the flush group's ticket
}

// BeginShared begins transaction t without flushing it: its begin frame is
// written and t's claim (taken here, before the frame) marks it in flight,
// so that nobody recovers it while its owner waits for the frame to be
// durable (AwaitDurable, without the root lock) and comes back for the
// message. The caller holds the root lock.
func (r *Store) BeginShared(t Tx) (*Ticket, error) {
	if err := r.Refresh(); err != nil {
		return nil, err
	}
	var held *Claim
	if r.lk != nil {
		c, err := r.lk.tryClaimTx(t.DeviceID)
		if err != nil {
			return nil, err
		}
		if c == nil {
			return nil, errors.Errorf("registry: thin id %d has a transaction in flight elsewhere", t.DeviceID)
		}
		held = c
	}
	if err := r.beginTx(&t, false); err != nil {
		held.Release()
		return nil, err
	}
	fd, err := unix.Dup(int(r.jf.Fd()))
	if err != nil {
		// The begin stays open: the next operation recovers it (the
		// message was never sent).
		held.Release()
		return nil, errors.Wrapf(err, "registry: dup the handle of %s", r.JournalPath())
	}
	unix.CloseOnExec(fd)
	if r.owned == nil {
		r.owned = map[uint32]*Claim{}
	}
	r.owned[t.DeviceID] = held
	tk := &Ticket{devID: t.DeviceID, epoch: r.st.epoch, end: r.st.pos, f: os.NewFile(uintptr(fd), r.JournalPath()), claim: held}
	tk.ticket = r.group.register(tk)
	return tk, nil
}

// AwaitDurable waits until tk's begin frame is durable: a flush that began
// after it was written, by this goroutine or another of the registry's
// (one flush for every frame written before it started), or by another
// process (which says so in the lock file). It does not need the root
// Lock, and must be called without it.
func (r *Store) AwaitDurable(tk *Ticket) error {
	return r.group.wait(tk, func(batch []*Ticket) bool {
		if r.lk == nil {
			return false
		}
		e, pos := r.lk.durable()
		for _, w := range batch {
			if w.epoch != e || w.end > pos {
				return false
			}
		}
		return true
	}, func(covered *Ticket) {
		if r.lk != nil {
			r.lk.setDurable(covered.epoch, covered.end)
		}
	})
}

// ResumeShared takes up transaction tk again after AwaitDurable, under the
// root lock: it must still be open (its claim kept anyone from recovering
// it), and the entries this hold puts and removes join its end.
func (r *Store) ResumeShared(tk *Ticket) error {
	if err := r.Refresh(); err != nil {
		return err
	}
	if r.pending[tk.devID] == nil {
		return errors.Errorf("registry: the transaction of thin id %d is no longer open in %s", tk.devID, r.JournalPath())
	}
	if tk.epoch == r.st.epoch && tk.end <= r.st.pos {
		r.st.synced = max(r.st.synced, tk.end)
	}
	r.enterTx(tk.devID)
	return nil
}

// ReleaseShared lets go of tk's claim and handle: its transaction is over,
// or left open for recovery. The caller holds the root lock (or the
// registry is closed).
func (r *Store) ReleaseShared(tk *Ticket) {
	tk.f.Close()
	delete(r.owned, tk.devID)
	tk.claim.Release()
}

// enterTx makes this hold's puts and removes join transaction devID's end.
func (r *Store) enterTx(devID uint32) {
	r.inTx, r.txID, r.txBuf = true, devID, nil
}

// BeginRecovery opens pending transaction devID for recovery: the changes
// recovery makes go out with its end.
func (r *Store) BeginRecovery(devID uint32) {
	r.enterTx(devID)
}

// End ends the transaction of this hold: its collected entries and an
// end entry in one frame, not flushed. Nothing depends on that frame
// reaching the disk: if a power cut loses it, recovery finds the
// transaction open, asks the pool what the message did and records the
// same outcome.
func (r *Store) End() error {
	return r.endTx(endDone, false)
}

// Abort ends the transaction of this hold whose message the kernel
// refused (or that was never sent), durably: a create left open could
// otherwise be taken, after a power cut, for one that happened (recovery
// would find the id in the pool).
func (r *Store) Abort() error {
	return r.endTx(endRefused, true)
}

// EndRecovery ends the transaction of this hold that recovery decided
// (BeginRecovery), not flushed: recovery decides the same again after a
// power cut.
func (r *Store) EndRecovery() error {
	return r.endTx(endRecovered, false)
}

// endTx ends the transaction of this hold with outcome.
func (r *Store) endTx(outcome byte, durable bool) error {
	devID := r.txID
	if !r.loaded || !r.inTx {
		r.inTx, r.txBuf = false, nil
		return nil
	}
	payload := appendEntry(r.txBuf, entryEnd, endBody(outcome, devID))
	err := r.appendFrame(payload, durable)
	if r.pending != nil {
		delete(r.pending, devID)
	}
	r.inTx, r.txBuf = false, nil
	return err
}

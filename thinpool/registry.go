package thinpool

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"sync/atomic"
	"time"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/fs"
	"github.com/thinctl/thinctl/internal/atomicfile"
	"github.com/thinctl/thinctl/internal/failpoint"
)

// registryVersion is the format version written into pool.json. Readers
// refuse newer versions; pool.json at version 1 is migrated (migrate.go),
// at version 2 (one open transaction at a time) rewritten as version 3 by
// Open (upgradeV2): the files themselves are read as they are.
const registryVersion = registryFormat

// registryV2 is pool.json's version in a root written before several
// transactions could be open at once.
const registryV2 = 2

// recordVersion is the version of the JSON documents inside entries (device
// records and transactions); version 3 did not change them.
const recordVersion = 2

// File and directory names under <root>/devicemapper; docs/registry.md
// describes them.
const (
	stateDirName     = "devicemapper"
	dataFileName     = "data"
	metaFileName     = "metadata"
	poolFileName     = "pool.json"
	snapshotFileName = "registry"
	journalFileName  = "journal"
	lockFileName     = "lock"
	mountDirName     = "mnt"
)

// defaultJournalSize is the journal's preallocated size: about 8,000
// creates and removes between compactions.
const defaultJournalSize = 4 << 20

// poolRecord is pool.json: the pool's configuration and the base device.
type poolRecord struct {
	Version  int    `json:"version"`
	PoolName string `json:"pool_name"`
	// Key identifies the root in device-mapper names and uuids
	// ("<major>:<minor>-<inode>" of the root directory at Init).
	Key          string `json:"key"`
	ExternalPool bool   `json:"external_pool,omitempty"`
	// DataFile and MetadataFile are relative to <root>/devicemapper when
	// the pool uses loop files (absolute for a pool Adopt took over, whose
	// files stay where the other program kept them); DataDevice and MetadataDevice are absolute
	// block device paths otherwise.
	DataFile       string    `json:"data_file,omitempty"`
	MetadataFile   string    `json:"metadata_file,omitempty"`
	DataDevice     string    `json:"data_device,omitempty"`
	MetadataDevice string    `json:"metadata_device,omitempty"`
	DataSize       uint64    `json:"data_size"`
	MetadataSize   uint64    `json:"metadata_size"`
	BlockSize      uint64    `json:"block_size"`
	NoDiscard      bool      `json:"no_discard,omitempty"`
	MinFreeSpace   float64   `json:"min_free_space"`
	Filesystem     fs.Type   `json:"filesystem"`
	MkfsArgs       []string  `json:"mkfs_args,omitempty"`
	MountOptions   []string  `json:"mount_options,omitempty"`
	BaseDeviceID   uint32    `json:"base_device_id"`
	BaseSize       uint64    `json:"base_size"`
	BaseUUID       string    `json:"base_uuid"`
	NextDeviceID   uint32    `json:"next_device_id"`
	Created        time.Time `json:"created"`
	// AdoptedFrom says which other program's pool Adopt took over ("" for
	// a pool Init made); ForeignTransactionID is the pool's transaction id
	// as that program left it (Adopt does not change it).
	AdoptedFrom          string `json:"adopted_from,omitempty"`
	ForeignTransactionID uint64 `json:"foreign_transaction_id,omitempty"`
}

// deviceRecord is one thin device: the body of a put entry (a file of its
// own, devices/<id>.json, in version 1).
type deviceRecord struct {
	Version     int       `json:"version"`
	ID          string    `json:"id"`
	DeviceID    uint32    `json:"device_id"`
	Size        uint64    `json:"size"`
	Initialized bool      `json:"initialized"`
	Deleted     bool      `json:"deleted"`
	Parent      string    `json:"parent"`
	Created     time.Time `json:"created"`
	// GrowPending is set when the device is bigger than its parent's
	// filesystem; the first activation (ext4) or mount (xfs) grows the
	// filesystem and clears it.
	GrowPending bool `json:"grow_pending,omitempty"`
	// Labels are the caller's string pairs (see labels.go), written in
	// the same durable append as the device itself.
	Labels map[string]string `json:"labels,omitempty"`
	// ReturningSpace marks a removed device whose blocks are still being
	// discarded (given back to the data file) before its thin device is
	// deleted from the pool. Such a record is kept under the key
	// returningKey(DeviceID), which no user id can be, so the user's id is
	// free again as soon as Remove returns; it is also marked Deleted.
	ReturningSpace bool `json:"returning_space,omitempty"`
	// RemovedID is the user id a ReturningSpace record's device had.
	RemovedID string `json:"removed_id,omitempty"`
}

func validateDeviceRecord(path, id string, d deviceRecord) error {
	if d.ID != id {
		return errors.Wrapf(ErrRegistryCorrupt, "%s records id %q, not %q", path, d.ID, id)
	}
	if !validKey(d.ID) {
		return errors.Wrapf(ErrRegistryCorrupt, "%s: %v", path, ValidateID(d.ID))
	}
	if d.DeviceID == 0 || d.DeviceID > maxDeviceID {
		return errors.Wrapf(ErrRegistryCorrupt, "%s has device_id %d outside 1..%d", path, d.DeviceID, maxDeviceID)
	}
	return nil
}

// registry keeps the device records of one root: pool.json (the pool's
// configuration, written rarely and atomically), the registry file (every
// record as of the last compaction) and the journal (the changes since,
// each a checksummed frame made durable by one fdatasync). Its in-memory
// state is the index; every method first catches up with what other
// processes appended (the lock file's change counter says when). Callers
// hold the root lock.
type registry struct {
	dir string     // <root>/devicemapper
	lk  *rootLock  // nil when no other process can share the root (tests)
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
	owned map[uint32]*claim
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

func newRegistry(dir string, lk *rootLock) *registry {
	return &registry{dir: dir, lk: lk, idx: &index{}, journalSize: defaultJournalSize}
}

func (r *registry) poolPath() string     { return filepath.Join(r.dir, poolFileName) }
func (r *registry) snapshotPath() string { return filepath.Join(r.dir, snapshotFileName) }
func (r *registry) journalPath() string  { return filepath.Join(r.dir, journalFileName) }

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

// loadPool reads pool.json; ErrNotInitialized when it does not exist. A
// version 1 pool.json is accepted (Open migrates the root).
func (r *registry) loadPool() (poolRecord, error) {
	var p poolRecord
	path := r.poolPath()
	if err := readJSON(path, &p); err != nil {
		if os.IsNotExist(err) {
			return p, errors.Wrapf(ErrNotInitialized, "%s does not exist", path)
		}
		return p, err
	}
	if err := checkVersion(path, p.Version, registryV1, registryV2, registryVersion); err != nil {
		return p, err
	}
	if p.PoolName == "" || p.Key == "" || p.BlockSize == 0 || p.BaseDeviceID == 0 || p.BaseDeviceID > maxDeviceID {
		return p, errors.Wrapf(ErrRegistryCorrupt, "%s lacks pool_name, key, block_size or a valid base_device_id", path)
	}
	return p, nil
}

// savePool writes pool.json at the current version.
func (r *registry) savePool(p poolRecord) error {
	p.Version = registryVersion
	return writeJSON(r.poolPath(), p)
}

// corrupt is ErrRegistryCorrupt naming a registry file.
func corrupt(path string, err error) error {
	return errors.Wrapf(ErrRegistryCorrupt, "%s: %v; restore it from a backup (it is never rewritten)", path, err)
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

// create makes an empty registry (Init): a journal of journalSize zeroed
// bytes and a registry file naming a new epoch, each written atomically.
// Anything left by an earlier, failed Init is replaced.
func (r *registry) create() error {
	r.close()
	if err := r.writeJournal(); err != nil {
		return err
	}
	e := newEpoch(0)
	if err := r.writeSnapshot(e, 0, nil, atomicfile.Options{}); err != nil {
		return err
	}
	return r.reload()
}

// writeJournal writes a new, empty journal atomically: its header and
// zeros, so that appends overwrite blocks that exist and fdatasync has no
// file size or extent to commit.
func (r *registry) writeJournal() error {
	size := r.journalSize
	if size < 64<<10 {
		size = 64 << 10
	}
	data := make([]byte, size)
	copy(data, encodeJournalHeader(size))
	return errors.Wrap(atomicfile.Write(r.journalPath(), data, atomicfile.Options{}), "registry")
}

// writeSnapshot writes the registry file: recs (nil: none), their epoch
// and the allocation hint.
func (r *registry) writeSnapshot(epoch uint64, next uint32, body []byte, opts atomicfile.Options) error {
	n := 0
	if body != nil {
		items, err := parseEntries(body)
		if err != nil {
			return errors.Wrap(err, "registry: encode the registry file")
		}
		n = len(items)
	}
	data := encodeSnapshot(epoch, next, n, body)
	return errors.Wrap(atomicfile.Write(r.snapshotPath(), data, opts), "registry")
}

// close drops the in-memory state and the journal's handle.
func (r *registry) close() {
	if r.jf != nil {
		r.jf.Close()
		r.jf = nil
	}
	r.loaded, r.pending, r.inTx, r.txBuf, r.err = false, nil, false, nil, nil
}

// invalidate makes the next call read everything from disk again.
func (r *registry) invalidate() {
	r.close()
}

// ensure loads the registry, or catches up with what other processes
// appended since this one last looked. Cheap when nothing changed: the
// first call under a lock hold reads the lock file's counter, later ones
// do nothing.
func (r *registry) ensure() error {
	if r.idx == nil { // a registry{dir: ...} made for reading only
		r.idx = &index{}
	}
	if r.idx.stale {
		r.close()
	}
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
		r.close()
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
func (r *registry) reload() error {
	r.close()
	snapData, err := os.ReadFile(r.snapshotPath())
	if err != nil {
		return errors.Wrapf(ErrRegistryCorrupt, "%s: %v", r.snapshotPath(), err)
	}
	snap, err := parseSnapshot(snapData)
	if err != nil {
		return corrupt(r.snapshotPath(), err)
	}
	f, err := os.OpenFile(r.journalPath(), os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return errors.Wrapf(ErrRegistryCorrupt, "%s: %v", r.journalPath(), err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return errors.Wrapf(err, "registry: stat %s", r.journalPath())
	}
	scan, capacity, release, err := readJournal(f, st.Size(), snap.epoch)
	if err != nil {
		f.Close()
		return corrupt(r.journalPath(), err)
	}
	defer release() // the frames' entries alias what it read
	x := newIndex()
	pending := txSet{}
	if err = applyEntries(x, pending, snap.items, r.snapshotPath()); err != nil {
		f.Close()
		return err
	}
	next := snap.next
	for _, fr := range scan.frames {
		if err = applyEntries(x, pending, fr.items, r.journalPath()); err != nil {
			f.Close()
			return err
		}
	}
	if scan.torn > scan.tail {
		// Frames whose fdatasync never completed lie beyond the chain's
		// end: zero them durably before anything is appended there.
		if _, err := f.WriteAt(make([]byte, scan.torn-scan.tail), scan.tail); err != nil {
			f.Close()
			return errors.Wrapf(err, "registry: clear the torn tail of %s", r.journalPath())
		}
		if err := fdatasync(f); err != nil {
			f.Close()
			return errors.Wrapf(err, "registry: fdatasync %s", r.journalPath())
		}
	}
	r.st = journalPos{epoch: snap.epoch, next: next, capacity: capacity, pos: scan.tail, synced: journalHeaderSize}
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
func (r *registry) catchUp() error {
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
		if err := applyEntries(r.idx, r.pending, fr.items, r.journalPath()); err != nil {
			return err
		}
		r.st.pos += size
		r.st.seq = fr.seq
		r.st.synced = max(r.st.synced, fr.synced)
	}
}

// txSet holds open transactions by thin id.
type txSet map[uint32]*txRecord

// sorted returns the transactions in thin id order.
func (ts txSet) sorted() []txRecord {
	out := make([]txRecord, 0, len(ts))
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
			var d deviceRecord
			if err := json.Unmarshal(it.body, &d); err != nil {
				return corrupt(path, errors.Wrap(err, "a device record does not decode"))
			}
			if err := checkVersion(path, d.Version, recordVersion); err != nil {
				return err
			}
			if err := validateDeviceRecord(path, d.ID, d); err != nil {
				return err
			}
			x.addEncoded(d, append([]byte(nil), it.body...))
		case entryDel:
			x.removeID(string(it.body))
		case entryBegin:
			var t txRecord
			if err := json.Unmarshal(it.body, &t); err != nil {
				return corrupt(path, errors.Wrap(err, "a transaction does not decode"))
			}
			if err := checkVersion(path, t.Version, recordVersion); err != nil {
				return err
			}
			if err := t.validate(); err != nil {
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
func (r *registry) appendFrame(payload []byte, durable bool) error {
	if r.err != nil {
		return r.err
	}
	size := frameSize(len(payload))
	if len(payload) > maxFramePayload {
		return errors.Errorf("registry: a change of %d bytes is larger than the %d a journal frame holds", len(payload), maxFramePayload)
	}
	if r.st.pos+size > r.st.capacity {
		if err := r.compact(); err != nil {
			return err
		}
		if r.st.pos+size > r.st.capacity {
			return errors.Errorf("registry: a change of %d bytes does not fit in the %d-byte journal %s", len(payload), r.st.capacity, r.journalPath())
		}
	}
	if err := r.bump(r.st.epoch); err != nil {
		return err
	}
	b := encodeFrame(r.st.epoch, r.st.seq+1, r.st.synced, payload)
	if _, err := r.jf.WriteAt(b, r.st.pos); err != nil {
		r.err = errors.Wrapf(err, "registry: write %s", r.journalPath())
		return r.err
	}
	failpoint.Inject(failpoint.JournalAfterWrite)
	if durable {
		if err := fdatasync(r.jf); err != nil {
			r.err = errors.Wrapf(err, "registry: fdatasync %s", r.journalPath())
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
func (r *registry) bump(epoch uint64) error {
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

// compact writes every record into a new registry file with a new epoch
// (atomically: the rename is the one step that switches from the old
// file and journal to the new file and an empty journal, whose old frames
// now belong to another epoch) and starts the journal over. An open
// transaction goes into the file as a begin entry.
func (r *registry) compact() error {
	body := r.encodeState()
	e := newEpoch(r.st.epoch)
	next := r.idx.hint()
	if err := r.bump(e); err != nil {
		return err
	}
	if err := r.writeSnapshot(e, next, body, compactWrite); err != nil {
		return err
	}
	r.st = journalPos{epoch: e, next: next, capacity: r.st.capacity, pos: journalHeaderSize, synced: journalHeaderSize}
	return nil
}

// encodeState encodes every record (in id order) and the open
// transactions (in thin id order) as the body of a registry file.
func (r *registry) encodeState() []byte {
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

// Open compacts a journal whose chain is at least replayCompactFrames
// frames long and replayCompactRatio times the number of records (churn:
// devices created and removed again), so that a process's Open replays a
// short journal: replaying a frame costs about what loading a record from
// the registry file does, and each create or remove appends two.
const (
	replayCompactFrames = 64
	replayCompactRatio  = 4
)

// replayLong reports whether Open should compact (see replayCompactFrames).
func (r *registry) replayLong() bool {
	return r.loaded && len(r.pending) == 0 && !r.inTx && r.err == nil &&
		r.st.seq >= replayCompactFrames && r.st.seq >= replayCompactRatio*uint64(len(r.idx.recs))
}

// compactNow compacts unless the journal is empty (Down does this).
func (r *registry) compactNow() error {
	if err := r.ensure(); err != nil {
		return err
	}
	if r.st.pos == journalHeaderSize {
		return nil
	}
	return r.compact()
}

// loadDevice returns one device record; ErrDeviceNotFound when there is
// none.
func (r *registry) loadDevice(id string) (deviceRecord, error) {
	if err := r.ensure(); err != nil {
		return deviceRecord{}, err
	}
	d, ok := r.idx.recs[id]
	if !ok {
		return deviceRecord{}, errors.Wrapf(ErrDeviceNotFound, "device %q", id)
	}
	return d.rec, nil
}

// saveDevice adds or replaces one device record: a durable frame of its
// own, or, inside a transaction, an entry of the transaction's end frame.
func (r *registry) saveDevice(d deviceRecord) error { return r.putDevice(nil, d) }

// putDevice is saveDevice with entries that go first in the same frame.
func (r *registry) putDevice(first []byte, d deviceRecord) error {
	if err := r.ensure(); err != nil {
		return err
	}
	d.Version = recordVersion
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

// removeDevice removes one device record (durably, or inside a
// transaction with its end).
func (r *registry) removeDevice(id string) error {
	if err := r.ensure(); err != nil {
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

// listDevices returns every device record, sorted by id.
func (r *registry) listDevices() ([]deviceRecord, error) {
	if err := r.ensure(); err != nil {
		return nil, err
	}
	ids := r.idx.sortedIDs()
	out := make([]deviceRecord, len(ids))
	for i, id := range ids {
		out[i] = r.idx.recs[id].rec
	}
	return out, nil
}

// deviceCount returns how many records there are.
func (r *registry) deviceCount() (int, error) {
	if err := r.ensure(); err != nil {
		return 0, err
	}
	return len(r.idx.recs), nil
}

// loadTx returns an open transaction a crashed process left (the one of
// the lowest thin id); nil when there is none. Transactions whose owner is
// alive (this registry's, or another's that holds its claim) are in
// flight, not left: it passes over them.
func (r *registry) loadTx() (*txRecord, error) {
	ts, err := r.leftTxs()
	if err != nil || len(ts) == 0 {
		return nil, err
	}
	return &ts[0], nil
}

// leftTxs returns the open transactions whose owner is gone, in thin id
// order. The caller holds the root lock, so an owner that is alive holds
// its claim (taken before its begin entry was written, let go after its
// end entry).
func (r *registry) leftTxs() ([]txRecord, error) {
	if err := r.ensure(); err != nil {
		return nil, err
	}
	var out []txRecord
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
			c.release()
		}
		out = append(out, t)
	}
	return out, nil
}

// pendingCreate reports whether an open transaction creates registry id
// id.
func (r *registry) pendingCreate(id string) bool {
	for _, t := range r.pending {
		if t.Op != opDelete && t.ID == id {
			return true
		}
	}
	return false
}

// pendingChildren returns how many open transactions create a snapshot of
// registry id id.
func (r *registry) pendingChildren(id string) int {
	n := 0
	for _, t := range r.pending {
		if t.Device != nil && t.Device.Parent == id {
			n++
		}
	}
	return n
}

// encodeTx makes t's begin entry.
func encodeTx(t *txRecord) ([]byte, error) {
	t.Version = recordVersion
	if t.Device != nil {
		d := *t.Device
		d.Version = recordVersion
		t.Device = &d
	}
	body, err := json.Marshal(t)
	if err != nil {
		return nil, errors.Wrap(err, "registry: encode the transaction")
	}
	return appendEntry(nil, entryBegin, body), nil
}

// saveTx makes transaction t durable before its message is sent: a begin
// entry (carrying the new device's record for a create) in a frame of its
// own, flushed. Until clearTx or abortTx, saveDevice and removeDevice add
// their entries to the transaction's end frame. The caller holds the root
// lock from here to the end.
func (r *registry) saveTx(t txRecord) error {
	if err := r.beginTx(&t, true); err != nil {
		return err
	}
	r.enterTx(t.DeviceID)
	return nil
}

// beginTx writes t's begin frame (flushed when durable) and records t as
// open.
func (r *registry) beginTx(t *txRecord, durable bool) error {
	if err := r.ensure(); err != nil {
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

// txTicket is a transaction begun without a flush (beginShared): what its
// owner waits for before it may send the message.
type txTicket struct {
	devID  uint32
	epoch  uint64 // of the journal the begin frame went to
	end    int64  // the journal offset after it
	f      *os.File
	claim  *claim
	ticket uint64 // the flush group's ticket
}

// beginShared begins transaction t without flushing it: its begin frame is
// written and t's claim (taken here, before the frame) marks it in flight,
// so that nobody recovers it while its owner waits for the frame to be
// durable (awaitDurable, without the root lock) and comes back for the
// message. The caller holds the root lock.
func (r *registry) beginShared(t txRecord) (*txTicket, error) {
	if err := r.ensure(); err != nil {
		return nil, err
	}
	var held *claim
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
		held.release()
		return nil, err
	}
	fd, err := unix.Dup(int(r.jf.Fd()))
	if err != nil {
		// The begin stays open: the next operation recovers it (the
		// message was never sent).
		held.release()
		return nil, errors.Wrapf(err, "registry: dup the handle of %s", r.journalPath())
	}
	unix.CloseOnExec(fd)
	if r.owned == nil {
		r.owned = map[uint32]*claim{}
	}
	r.owned[t.DeviceID] = held
	tk := &txTicket{devID: t.DeviceID, epoch: r.st.epoch, end: r.st.pos, f: os.NewFile(uintptr(fd), r.journalPath()), claim: held}
	tk.ticket = r.group.register(tk)
	return tk, nil
}

// awaitDurable waits until tk's begin frame is durable: a flush that began
// after it was written, by this goroutine or another of the registry's
// (one flush for every frame written before it started), or by another
// process (which says so in the lock file). It does not need the root
// lock, and must be called without it.
func (r *registry) awaitDurable(tk *txTicket) error {
	return r.group.wait(tk, func(batch []*txTicket) bool {
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
	}, func(covered *txTicket) {
		if r.lk != nil {
			r.lk.setDurable(covered.epoch, covered.end)
		}
	})
}

// resumeShared takes up transaction tk again after awaitDurable, under the
// root lock: it must still be open (its claim kept anyone from recovering
// it), and the entries this hold puts and removes join its end.
func (r *registry) resumeShared(tk *txTicket) error {
	if err := r.ensure(); err != nil {
		return err
	}
	if r.pending[tk.devID] == nil {
		return errors.Errorf("registry: the transaction of thin id %d is no longer open in %s", tk.devID, r.journalPath())
	}
	if tk.epoch == r.st.epoch && tk.end <= r.st.pos {
		r.st.synced = max(r.st.synced, tk.end)
	}
	r.enterTx(tk.devID)
	return nil
}

// releaseShared lets go of tk's claim and handle: its transaction is over,
// or left open for recovery. The caller holds the root lock (or the
// registry is closed).
func (r *registry) releaseShared(tk *txTicket) {
	tk.f.Close()
	delete(r.owned, tk.devID)
	tk.claim.release()
}

// enterTx makes this hold's puts and removes join transaction devID's end.
func (r *registry) enterTx(devID uint32) {
	r.inTx, r.txID, r.txBuf = true, devID, nil
}

// beginRecovery opens pending transaction devID for recovery: the changes
// recovery makes go out with its end.
func (r *registry) beginRecovery(devID uint32) {
	r.enterTx(devID)
}

// clearTx ends the transaction of this hold: its collected entries and an
// end entry in one frame, not flushed. Nothing depends on that frame
// reaching the disk: if a power cut loses it, recovery finds the
// transaction open, asks the pool what the message did and records the
// same outcome.
func (r *registry) clearTx() error {
	return r.endTx(endDone, false)
}

// abortTx ends the transaction of this hold whose message the kernel
// refused (or that was never sent), durably: a create left open could
// otherwise be taken, after a power cut, for one that happened (recovery
// would find the id in the pool).
func (r *registry) abortTx() error {
	return r.endTx(endRefused, true)
}

// endTx ends the transaction of this hold with outcome.
func (r *registry) endTx(outcome byte, durable bool) error {
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

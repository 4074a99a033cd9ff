package store

import (
	"encoding/json"
	"os"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/internal/failpoint"
)

// Appending frames to the journal, and compaction: the registry file
// written anew and the journal started over.

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

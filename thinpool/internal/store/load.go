package store

import (
	"encoding/binary"
	"encoding/json"
	"os"
	"sort"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/errdefs"
)

// Loading the store and catching up with what other processes appended.

// Refresh loads the store, or catches up with what other processes
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

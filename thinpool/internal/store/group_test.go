package store

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/pkg/errors"
	"github.com/thinctl/thinctl/internal/crc32c"
)

// openTxs lists every open transaction of r, in flight or not.
func openTxs(t *testing.T, r *Store) string {
	t.Helper()
	mustOK(t, r.Refresh())
	var b strings.Builder
	for _, tx := range r.pending.sorted() {
		fmt.Fprintf(&b, "%s:%d;", tx.Op, tx.DeviceID)
	}
	return b.String()
}

// createTx is a create transaction of registry id id as thin id devID.
func createTx(id string, devID uint32) Tx {
	d := sampleDevice(id, devID)
	return Tx{Op: OpCreateSnap, DeviceID: devID, OriginDeviceID: 1, ID: id, Device: &d}
}

// finishShared waits for tk's begin to be durable, then records the
// Create's device and ends it, as runTxShared does after its message.
func finishShared(t *testing.T, r *Store, tk *Ticket, d Device) {
	t.Helper()
	mustOK(t, r.AwaitDurable(tk))
	mustOK(t, r.ResumeShared(tk))
	mustOK(t, r.Put(d))
	mustOK(t, r.End())
	r.ReleaseShared(tk)
}

func TestSeveralOpenTransactionsReplayAndEndByThinID(t *testing.T) {
	r := newTestRegistry(t)
	var tks []*Ticket
	for i, id := range []string{"a", "b", "c"} {
		tk, err := r.BeginShared(createTx(id, uint32(20+i)))
		mustOK(t, err)
		tks = append(tks, tk)
	}
	t.Run("three begins are open at once, also for a new reader", func(t *testing.T) {
		want := "create_snap:20;create_snap:21;create_snap:22;"
		for _, rr := range []*Store{r, reopened(t, r.dir)} {
			if got := openTxs(t, rr); got != want {
				t.Fatalf("open %q, want %q", got, want)
			}
		}
	})
	t.Run("the end of the middle one ends only it", func(t *testing.T) {
		finishShared(t, r, tks[1], sampleDevice("b", 21))
		rr := reopened(t, r.dir)
		if got, want := openTxs(t, rr), "create_snap:20;create_snap:22;"; got != want {
			t.Fatalf("open %q, want %q", got, want)
		}
		if got, want := state(t, rr), "b=21 del=false labels=map[];tx=create_snap:20"; got != want {
			t.Fatalf("state %q, want %q", got, want)
		}
	})
	t.Run("a compaction carries every open transaction into the registry file", func(t *testing.T) {
		mustOK(t, r.Compact())
		if got, want := openTxs(t, reopened(t, r.dir)), "create_snap:20;create_snap:22;"; got != want {
			t.Fatalf("open after compaction %q, want %q", got, want)
		}
	})
	t.Run("their ends, after the compaction, end them", func(t *testing.T) {
		finishShared(t, r, tks[2], sampleDevice("c", 22))
		finishShared(t, r, tks[0], sampleDevice("a", 20))
		rr := reopened(t, r.dir)
		if got := openTxs(t, rr); got != "" {
			t.Fatalf("still open: %q", got)
		}
		if got, want := state(t, rr), "a=20 del=false labels=map[];b=21 del=false labels=map[];c=22 del=false labels=map[];"; got != want {
			t.Fatalf("state %q, want %q", got, want)
		}
	})
}

func TestBeginsWrittenBeforeAFlushShareIt(t *testing.T) {
	r := newTestRegistry(t)
	var tks []*Ticket
	for i := range 5 {
		tk, err := r.BeginShared(createTx(fmt.Sprintf("d%d", i), uint32(30+i)))
		mustOK(t, err)
		tks = append(tks, tk)
	}
	before := flushes.Load()
	var wg sync.WaitGroup
	errs := make([]error, len(tks))
	for i, tk := range tks {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = r.AwaitDurable(tk) }()
	}
	wg.Wait()
	for _, err := range errs {
		mustOK(t, err)
	}
	if got := flushes.Load() - before; got != 1 {
		t.Fatalf("5 begins waited with %d flushes, want 1", got)
	}
	t.Run("a begin written after that flush waits for a flush of its own", func(t *testing.T) {
		tk, err := r.BeginShared(createTx("late", 40))
		mustOK(t, err)
		before := flushes.Load()
		mustOK(t, r.AwaitDurable(tk))
		if got := flushes.Load() - before; got != 1 {
			t.Fatalf("%d flushes, want 1", got)
		}
	})
}

// Two processes (two registries, each with its own open of the lock file):
// one's flush that began after the other's begin was written covers it,
// and the lock file's durable mark says so; a transaction in flight is
// never handed to recovery while its owner holds its claim.
func TestAnotherProcessSharesTheFlushAndLeavesTransactionsInFlightAlone(t *testing.T) {
	a, b, lkA, lkB, with := twoProcesses(t)
	var tkA, tkB *Ticket
	var err error
	with(lkA, func() { tkA, err = a.BeginShared(createTx("a", 50)); mustOK(t, err) })
	with(lkB, func() {
		tkB, err = b.BeginShared(createTx("b", 51))
		mustOK(t, err)
		ts, err := b.LeftTxs()
		mustOK(t, err)
		if len(ts) != 0 {
			t.Fatalf("the other process's transaction in flight is offered to recovery: %+v", ts)
		}
	})
	before := flushes.Load()
	mustOK(t, b.AwaitDurable(tkB))
	mustOK(t, a.AwaitDurable(tkA))
	if got := flushes.Load() - before; got != 1 {
		t.Fatalf("two begins, one after the other, took %d flushes; want 1 (the later one's covers both)", got)
	}
	with(lkB, func() {
		mustOK(t, b.ResumeShared(tkB))
		mustOK(t, b.Put(sampleDevice("b", 51)))
		mustOK(t, b.End())
		b.ReleaseShared(tkB)
	})
	// a's owner goes away with its transaction open (its claim dies with it).
	tkA.f.Close()
	tkA.claim.Release()
	with(lkB, func() {
		ts, err := b.LeftTxs()
		mustOK(t, err)
		if len(ts) != 1 || ts[0].DeviceID != 50 {
			t.Fatalf("after its owner is gone, recovery is offered %+v; want the create of thin id 50", ts)
		}
	})
}

// A power cut after begins were written but before any flush completed:
// a torn tail amid several open transactions drops exactly the frames
// whose flush never returned, and the others stay open.
func TestATornTailAmidSeveralOpenTransactions(t *testing.T) {
	r := newTestRegistry(t)
	tk1, err := r.BeginShared(createTx("one", 60))
	mustOK(t, err)
	mustOK(t, r.AwaitDurable(tk1)) // durable
	tk2, err := r.BeginShared(createTx("two", 61))
	mustOK(t, err)
	start, end := tk1.end, tk2.end
	img, err := os.ReadFile(r.JournalPath())
	mustOK(t, err)
	payloadEnd := start + frameHeaderSize + int64(binary.LittleEndian.Uint32(img[start+4:])) // the padding is outside the checksum
	for cut := start; cut < payloadEnd; cut += 13 {
		torn := append([]byte(nil), img...)
		copy(torn[cut:end], make([]byte, end-cut))
		dir := t.TempDir()
		copyDir(t, r.dir, dir)
		mustOK(t, os.WriteFile(filepath.Join(dir, journalFileName), torn, 0o600))
		if got, want := openTxs(t, reopened(t, dir)), "create_snap:60;"; got != want {
			t.Fatalf("torn at %d: open %q, want %q", cut, got, want)
		}
	}
	if got, want := openTxs(t, reopened(t, r.dir)), "create_snap:60;create_snap:61;"; got != want {
		t.Fatalf("untorn: open %q, want %q", got, want)
	}
}

func TestOpenTransactionsThatCannotBeTellApartAreCorrupt(t *testing.T) {
	tx := func(devID uint32) []byte {
		b, err := encodeTx(&Tx{Op: OpDelete, DeviceID: devID, ID: "x"})
		mustOK(t, err)
		return b
	}
	cases := []struct {
		name    string
		entries []byte
		want    string
	}{
		{"a second begin of the same thin id", append(tx(5), tx(5)...), "of the same thin id"},
		{"a version 2 end while two are open", appendEntry(append(tx(5), tx(6)...), entryEnd, []byte{endDone}), "without a thin id"},
		{"an end of another length", appendEntry(tx(5), entryEnd, []byte{1, 2}), "end entry of 2 bytes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			items, err := parseEntries(c.entries)
			mustOK(t, err)
			err = applyEntries(newIndex(), txSet{}, items, "/x/journal")
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "/x/journal") {
				t.Fatalf("got %v; want ErrCorrupt naming the file and saying %q", err, c.want)
			}
		})
	}
	t.Run("a version 2 end ends the one open transaction", func(t *testing.T) {
		items, err := parseEntries(appendEntry(tx(5), entryEnd, []byte{endDone}))
		mustOK(t, err)
		ts := txSet{}
		mustOK(t, applyEntries(newIndex(), ts, items, "journal"))
		if len(ts) != 0 {
			t.Fatalf("still open: %v", ts)
		}
	})
}

// setFormat rewrites the version of a registry file or journal in dir
// (and its checksum), as a release before version 3 wrote them.
func setFormat(t *testing.T, path string, v uint32) {
	t.Helper()
	b, err := os.ReadFile(path)
	mustOK(t, err)
	binary.LittleEndian.PutUint32(b[8:], v)
	if string(b[:8]) == journalMagic {
		binary.LittleEndian.PutUint32(b[24:], crc32c.Update(0, b[:24]))
	} else {
		binary.LittleEndian.PutUint32(b[40:], crc32c.Update(crc32c.Update(0, b[:40]), b[registryHeaderSize:]))
	}
	mustOK(t, os.WriteFile(path, b, 0o600))
}

// v2Registry makes a registry as version 2 wrote it: the headers say 2
// and the end entries carry no thin id; a create is left open at the end.
func v2Registry(t *testing.T) *Store {
	t.Helper()
	r := newTestRegistry(t)
	d := sampleDevice("done", 70)
	mustOK(t, r.Begin(createTx("done", 70)))
	mustOK(t, r.Put(d))
	// a version 2 end: outcome only
	mustOK(t, r.appendFrame(appendEntry(r.txBuf, entryEnd, []byte{endDone}), false))
	r.inTx, r.txBuf = false, nil
	delete(r.pending, 70)
	mustOK(t, r.Begin(createTx("open", 71)))
	r.Close()
	setFormat(t, r.JournalPath(), 2)
	setFormat(t, r.registryPath(), 2)
	return r
}

func TestAVersion2RegistryReadsAndContinuesAsVersion3(t *testing.T) {
	r := v2Registry(t)
	rr := reopened(t, r.dir)
	if got, want := state(t, rr), "done=70 del=false labels=map[];tx=create_snap:71"; got != want {
		t.Fatalf("version 2 registry reads %q, want %q", got, want)
	}
	// A version 3 writer continues it: a second transaction opens beside
	// the one left, each ends by its thin id.
	tk, err := rr.BeginShared(createTx("new", 72))
	mustOK(t, err)
	finishShared(t, rr, tk, sampleDevice("new", 72))
	rr.BeginRecovery(71)
	mustOK(t, rr.Put(sampleDevice("open", 71)))
	mustOK(t, rr.endTx(endRecovered, false))
	mustOK(t, rr.Compact())
	if got, want := state(t, reopened(t, r.dir)), "done=70 del=false labels=map[];new=72 del=false labels=map[];open=71 del=false labels=map[];"; got != want {
		t.Fatalf("after version 3 appends and a compaction %q, want %q", got, want)
	}
	b, err := os.ReadFile(r.registryPath())
	mustOK(t, err)
	if v := binary.LittleEndian.Uint32(b[8:]); v != Version {
		t.Fatalf("the compacted registry file says version %d, want %d", v, Version)
	}
	t.Run("pool.json at version 2 is read; a newer one is refused", func(t *testing.T) {
		p := Config{Version: V2, PoolName: "thinctl-8:1-12-pool", Key: "8:1-12", BlockSize: 65536, BaseDeviceID: 1}
		mustOK(t, writeJSON(r.ConfigPath(), p))
		if got, err := r.LoadConfig(); err != nil || got.Version != V2 {
			t.Fatalf("loadPool of version 2 = %d, %v", got.Version, err)
		}
		p.Version = Version + 1
		mustOK(t, writeJSON(r.ConfigPath(), p))
		if _, err := r.LoadConfig(); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "upgrade") {
			t.Fatalf("loadPool of version %d = %v; want a refusal saying upgrade", p.Version, err)
		}
	})
}

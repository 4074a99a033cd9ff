package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/fs"
	"github.com/thinctl/thinctl/internal/testenv"
)

// newTestRegistry makes an empty version 3 registry in a new directory,
// with the smallest journal (64 KiB), used by one process.
func newTestRegistry(t *testing.T) *Store {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "devicemapper")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	r := New(dir, nil)
	r.journalSize = 64 << 10
	if err := r.Create(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// reopened reads the registry in dir afresh, as a new process would.
func reopened(t *testing.T, dir string) *Store {
	t.Helper()
	r := New(dir, nil)
	t.Cleanup(r.Close)
	return r
}

func sampleDevice(id string, devID uint32) Device {
	return Device{Version: RecordVersion, ID: id, DeviceID: devID, Size: 256 << 20,
		Initialized: true, Parent: "base-layer", Created: time.Date(2026, 11, 22, 7, 0, 0, 0, time.UTC)}
}

// state is what a registry holds, for comparisons.
func state(t *testing.T, r *Store) string {
	t.Helper()
	recs, err := r.List()
	if err != nil {
		t.Fatal(err)
	}
	tx, err := r.LeftTx()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, d := range recs {
		fmt.Fprintf(&b, "%s=%d del=%v labels=%v;", d.ID, d.DeviceID, d.Deleted, d.Labels)
	}
	if tx != nil {
		fmt.Fprintf(&b, "tx=%s:%d", tx.Op, tx.DeviceID)
	}
	return b.String()
}

func mustOK(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestRegistryRoundTrip(t *testing.T) {
	r := newTestRegistry(t)
	t.Run("a device record reads back equal, also after a reopen", func(t *testing.T) {
		d := sampleDevice("layer-1", 42)
		d.GrowPending = true
		d.Labels = map[string]string{"k": "v"}
		mustOK(t, r.Put(d))
		for _, rr := range []*Store{r, reopened(t, r.dir)} {
			got, err := rr.Get("layer-1")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, d) {
				t.Fatalf("read back %+v, want %+v", got, d)
			}
		}
	})
	t.Run("pool.json reads back equal at version 2", func(t *testing.T) {
		p := Config{Version: Version, PoolName: "thinctl-8:1-12-pool", Key: "8:1-12", DataFile: "data",
			MetadataFile: "metadata", DataSize: 1 << 30, MetadataSize: 64 << 20, BlockSize: 64 << 10, MinFreeSpace: 10,
			Filesystem: fs.XFS, MkfsArgs: []string{"-m", "crc=1"}, MountOptions: []string{"noatime"}, BaseDeviceID: 1,
			BaseSize: 256 << 20, BaseUUID: "0b5e2c1e-3b0a-4b8e-9e1e-1f2a3b4c5d6e", NextDeviceID: 9,
			Created: time.Date(2026, 11, 22, 7, 0, 0, 0, time.UTC)}
		mustOK(t, r.SaveConfig(p))
		got, err := r.LoadConfig()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, p) {
			t.Fatalf("read back %+v, want %+v", got, p)
		}
	})
	t.Run("an open transaction survives a reopen with its record, and clears", func(t *testing.T) {
		d := sampleDevice("layer-2", 43)
		tx := Tx{Op: OpCreateSnap, DeviceID: 43, OriginDeviceID: 1, ID: "layer-2", Device: &d,
			Started: time.Date(2026, 11, 22, 7, 0, 0, 0, time.UTC)}
		mustOK(t, r.Begin(tx))
		got, err := reopened(t, r.dir).LeftTx()
		if err != nil || got == nil || got.Device == nil || !reflect.DeepEqual(*got.Device, d) || got.Op != tx.Op {
			t.Fatalf("loadTx after a reopen = %+v, %v; want %+v", got, err, tx)
		}
		if _, err := reopened(t, r.dir).Get("layer-2"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("the record of an open create is visible before its end: %v", err)
		}
		mustOK(t, r.Put(d))
		mustOK(t, r.End())
		rr := reopened(t, r.dir)
		if got, err := rr.LeftTx(); got != nil || err != nil {
			t.Fatalf("after clearTx loadTx = %+v, %v; want nil, nil", got, err)
		}
		if _, err := rr.Get("layer-2"); err != nil {
			t.Fatalf("the record of an ended create: %v", err)
		}
	})
	t.Run("listing returns every record sorted by id", func(t *testing.T) {
		for i, id := range []string{"zeta", "alpha", "mid"} {
			mustOK(t, r.Put(sampleDevice(id, uint32(100+i))))
		}
		recs, err := reopened(t, r.dir).List()
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, d := range recs {
			ids = append(ids, d.ID)
		}
		if strings.Join(ids, ",") != "alpha,layer-1,layer-2,mid,zeta" {
			t.Fatalf("listed %v", ids)
		}
	})
	t.Run("removing a record makes it not found, also after a reopen", func(t *testing.T) {
		mustOK(t, r.Remove("mid"))
		for _, rr := range []*Store{r, reopened(t, r.dir)} {
			if _, err := rr.Get("mid"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("loadDevice after remove = %v, want ErrNotFound", err)
			}
		}
	})
	t.Run("a missing pool.json is ErrNotInitialized", func(t *testing.T) {
		if _, err := newTestRegistry(t).LoadConfig(); !errors.Is(err, ErrNotInitialized) {
			t.Fatalf("loadPool = %v, want ErrNotInitialized", err)
		}
	})
}

func TestOneFlushPerChange(t *testing.T) {
	r := newTestRegistry(t)
	count := func(fn func()) int64 {
		before := flushes.Load()
		fn()
		return flushes.Load() - before
	}
	d := sampleDevice("a", 5)
	cases := []struct {
		name string
		want int64
		fn   func()
	}{
		{"a create's begin flushes once", 1, func() {
			mustOK(t, r.Begin(Tx{Op: OpCreateSnap, DeviceID: 5, OriginDeviceID: 1, ID: "a", Device: &d}))
		}},
		{"a create's record and end do not flush", 0, func() { mustOK(t, r.Put(d)); mustOK(t, r.End()) }},
		{"a delete's begin flushes once", 1, func() { mustOK(t, r.Begin(Tx{Op: OpDelete, DeviceID: 5, ID: "a"})) }},
		{"a delete's removal and end do not flush", 0, func() { mustOK(t, r.Remove("a")); mustOK(t, r.End()) }},
		{"a record change outside a transaction flushes once", 1, func() { mustOK(t, r.Put(sampleDevice("b", 6))) }},
		{"a refused message's end flushes once", 1, func() {
			mustOK(t, r.Begin(Tx{Op: OpDelete, DeviceID: 6, ID: "b"}))
			mustOK(t, r.Abort())
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := c.want
			if strings.Contains(c.name, "refused") {
				want++ // its begin
			}
			if got := count(c.fn); got != want {
				t.Fatalf("%d flushes, want %d", got, want)
			}
		})
	}
	if got := state(t, reopened(t, r.dir)); got != "b=6 del=false labels=map[];" {
		t.Fatalf("reopened state %q", got)
	}
}

// journalImage builds a registry with n records and returns its directory
// and the journal's bytes before and after one more durable change.
func journalImage(t *testing.T, n int) (dir string, before, after []byte, endBefore, endAfter int64) {
	t.Helper()
	r := newTestRegistry(t)
	for i := range n {
		mustOK(t, r.Put(sampleDevice(fmt.Sprintf("d%d", i), uint32(10+i))))
	}
	before, _ = os.ReadFile(r.JournalPath())
	endBefore = r.st.pos
	d := sampleDevice("last", 99)
	d.Labels = map[string]string{"a-label": strings.Repeat("x", 300)}
	mustOK(t, r.Put(d))
	after, _ = os.ReadFile(r.JournalPath())
	return r.dir, before, after, endBefore, r.st.pos
}

func TestATornLastFrameIsIgnoredAtEveryByte(t *testing.T) {
	dir, before, after, start, end := journalImage(t, 3)
	wantBefore := state(t, func() *Store {
		d := t.TempDir()
		copyDir(t, dir, d)
		mustOK(t, os.WriteFile(filepath.Join(d, journalFileName), before, 0o600))
		return reopened(t, d)
	}())
	wantAfter := state(t, reopened(t, dir))
	d := t.TempDir() // the registry file stays as it is; each case writes the journal
	copyDir(t, dir, d)
	jp := filepath.Join(d, journalFileName)
	for cut := start; cut <= end; cut++ {
		for _, kind := range []string{"the head written", "the tail written"} {
			img := append([]byte(nil), before...)
			if kind == "the head written" {
				copy(img[start:cut], after[start:cut])
			} else {
				copy(img[cut:end], after[cut:end])
			}
			mustOK(t, os.WriteFile(jp, img, 0o600))
			r := New(d, nil)
			got := state(t, r)
			// The padding after the payload is outside the checksum: the
			// frame is whole once its payload is.
			payloadEnd := start + frameHeaderSize + int64(binary.LittleEndian.Uint32(after[start+4:]))
			complete := (kind == "the head written" && cut >= payloadEnd) || (kind == "the tail written" && cut == start)
			want := wantBefore
			if complete {
				want = wantAfter
			}
			if got != want {
				t.Fatalf("%s up to byte %d of [%d,%d): state %q, want %q", kind, cut, start, end, got, want)
			}
			// The next change lands where the torn frame was and reads back
			// (checked at a sample of the offsets: each costs a flush).
			if (cut-start)%17 == 0 || cut == end || cut == payloadEnd-1 {
				mustOK(t, r.Put(sampleDevice("next", 200)))
				if got := state(t, reopened(t, d)); !strings.Contains(got, "next=200") || strings.Contains(got, "last=99") != complete {
					t.Fatalf("%s up to byte %d: after the next change the state is %q", kind, cut, got)
				}
			}
			r.Close()
		}
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	ents, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		mustOK(t, os.WriteFile(filepath.Join(to, e.Name()), b, 0o600))
	}
}

// Frames whose fdatasync did not complete may reach the disk in any order:
// an unflushed end frame can be lost while the begin frame after it
// arrives. Both are dropped (the begin's flush never returned), the
// surviving one is cleared so a later chain never runs into it, and
// nothing is refused.
func TestALostUnflushedFrameBeforeAnIntactOneIsATornTail(t *testing.T) {
	r := newTestRegistry(t)
	mustOK(t, r.Put(sampleDevice("kept", 10)))
	d := sampleDevice("a", 11)
	mustOK(t, r.Begin(Tx{Op: OpCreateSnap, DeviceID: 11, OriginDeviceID: 1, ID: "a", Device: &d}))
	mustOK(t, r.Put(d))
	endStart := r.st.pos
	mustOK(t, r.End()) // not flushed
	endEnd := r.st.pos
	mustOK(t, r.Begin(Tx{Op: OpDelete, DeviceID: 10, ID: "kept"})) // flushed
	img, _ := os.ReadFile(r.JournalPath())
	// The end frame never reached the disk; the begin after it did.
	copy(img[endStart:endEnd], make([]byte, endEnd-endStart))
	dir := t.TempDir()
	copyDir(t, r.dir, dir)
	jp := filepath.Join(dir, journalFileName)
	mustOK(t, os.WriteFile(jp, img, 0o600))
	rr := reopened(t, dir)
	if got, want := state(t, rr), "kept=10 del=false labels=map[];tx=create_snap:11"; got != want {
		t.Fatalf("state %q, want %q (the create open, the delete never begun)", got, want)
	}
	// Recovery ends the create; new frames follow; the stray delete begin
	// must never be read as part of the chain.
	rr.BeginRecovery(11)
	mustOK(t, rr.Put(d))
	mustOK(t, rr.endTx(endRecovered, true))
	mustOK(t, rr.Put(sampleDevice("b", 12)))
	if got, want := state(t, reopened(t, dir)), "a=11 del=false labels=map[];b=12 del=false labels=map[];kept=10 del=false labels=map[];"; got != want {
		t.Fatalf("after recovery state %q, want %q", got, want)
	}
}

func TestCorruptionBeforeTheTailIsRefusedAndLeftAlone(t *testing.T) {
	r := newTestRegistry(t)
	var starts []int64
	for i := range 6 {
		starts = append(starts, r.st.pos)
		mustOK(t, r.Put(sampleDevice(fmt.Sprintf("d%d", i), uint32(10+i))))
	}
	img, _ := os.ReadFile(r.JournalPath())
	regFile, _ := os.ReadFile(r.registryPath())
	cases := []struct {
		name string
		file string
		data []byte
	}{
		{"a flipped bit in the second frame of the journal", journalFileName, flip(img, starts[1]+frameHeaderSize+3)},
		{"a flipped bit in a frame header", journalFileName, flip(img, starts[2]+17)},
		{"a zeroed frame in the middle", journalFileName, zero(img, starts[3], starts[4])},
		{"a damaged journal header", journalFileName, flip(img, 9)},
		{"a journal cut short", journalFileName, img[:len(img)-4096]},
		{"a flipped bit in the registry file", registryFileName, flip(regFile, int64(len(regFile)-2))},
		{"a registry file cut short", registryFileName, regFile[:len(regFile)-1]},
		{"an empty registry file", registryFileName, nil},
		{"a registry file of a newer version", registryFileName, func() []byte { b := append([]byte(nil), regFile...); b[8] = 9; return b }()},
	}
	for _, c := range cases {
		t.Run(c.name+" is ErrCorrupt naming the file, which stays as it was", func(t *testing.T) {
			dir := t.TempDir()
			copyDir(t, r.dir, dir)
			path := filepath.Join(dir, c.file)
			mustOK(t, os.WriteFile(path, c.data, 0o600))
			rr := reopened(t, dir)
			_, err := rr.List()
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) {
				t.Fatalf("listDevices = %v, want ErrCorrupt naming %s", err, path)
			}
			if err := rr.Put(sampleDevice("new", 50)); err == nil {
				t.Fatal("a change was accepted on a corrupt registry")
			}
			if got, _ := os.ReadFile(path); !bytes.Equal(got, c.data) {
				t.Fatal("the corrupt file was modified")
			}
		})
	}
}

func flip(b []byte, at int64) []byte {
	c := append([]byte(nil), b...)
	c[at] ^= 0x10
	return c
}

func zero(b []byte, from, to int64) []byte {
	c := append([]byte(nil), b...)
	copy(c[from:to], make([]byte, to-from))
	return c
}

func TestAFullJournalIsCompactedAndEverythingReadsBack(t *testing.T) {
	r := newTestRegistry(t)
	epoch := r.st.epoch
	want := map[string]uint32{}
	for i := range 400 { // about 3 times what 64 KiB holds
		id := fmt.Sprintf("dev-%d", i%150)
		if i%7 == 3 {
			mustOK(t, r.Remove(id))
			delete(want, id)
			continue
		}
		mustOK(t, r.Put(sampleDevice(id, uint32(1000+i))))
		want[id] = uint32(1000 + i)
	}
	if r.st.epoch == epoch {
		t.Fatal("no compaction happened")
	}
	recs, err := reopened(t, r.dir).List()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]uint32{}
	for _, d := range recs {
		got[d.ID] = d.DeviceID
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("after compactions read back %d records, want %d", len(got), len(want))
	}
}

// A crash during a compaction: before the registry file's rename nothing
// changed; after it, the old journal's frames belong to another epoch and
// the new file holds them all. Either way every record reads back.
func TestACompactionInterruptedAtEachStepLosesNothing(t *testing.T) {
	for _, step := range []string{"before the rename", "after the rename"} {
		t.Run("a crash "+step+" leaves every record", func(t *testing.T) {
			r := newTestRegistry(t)
			for i := range 20 {
				mustOK(t, r.Put(sampleDevice(fmt.Sprintf("d%d", i), uint32(10+i))))
			}
			d := sampleDevice("open", 40)
			mustOK(t, r.Begin(Tx{Op: OpCreateSnap, DeviceID: 40, OriginDeviceID: 1, ID: "open", Device: &d}))
			want := state(t, reopened(t, r.dir))
			crash := func() { panic("crash") }
			saved := compactWrite
			if step == "before the rename" {
				compactWrite.BeforeRename = crash
			} else {
				compactWrite.AfterRename = crash
			}
			defer func() { compactWrite = saved }()
			func() {
				defer func() { _ = recover() }()
				_ = r.Compact()
				t.Fatal("the compaction did not stop at its step")
			}()
			compactWrite = saved
			rr := reopened(t, r.dir)
			if got := state(t, rr); got != want {
				t.Fatalf("state %q, want %q", got, want)
			}
			rr.BeginRecovery(40)
			mustOK(t, rr.Put(d))
			mustOK(t, rr.End())
			if got := state(t, reopened(t, r.dir)); !strings.Contains(got, "open=40") || strings.Contains(got, "tx=") {
				t.Fatalf("after ending the transaction: %q", got)
			}
		})
	}
}

// twoProcesses returns two registries of one root, each with its own open
// of the lock file, as two processes would have them, and with, which runs
// fn holding a registry's root lock.
func twoProcesses(t *testing.T) (a, b *Store, lkA, lkB *Lock, with func(*Lock, func())) {
	t.Helper()
	a = newTestRegistry(t)
	lkA, err := OpenLock(filepath.Join(a.dir, LockFileName))
	mustOK(t, err)
	lkB, err = OpenLock(filepath.Join(a.dir, LockFileName))
	mustOK(t, err)
	a.lk = lkA
	b = New(a.dir, lkB)
	t.Cleanup(func() {
		b.Close()
		lkA.Close()
		lkB.Close()
	})
	with = func(lk *Lock, fn func()) {
		mustOK(t, lk.Lock())
		defer lk.Unlock()
		fn()
	}
	return a, b, lkA, lkB, with
}

// Two handles with their own lock file handles stand for two processes.
func TestAnotherProcessSeesAppendsAndCompactions(t *testing.T) {
	a, b, lkA, lkB, with := twoProcesses(t)
	with(lkB, func() { mustOK(t, b.Refresh()) })
	with(lkA, func() { mustOK(t, a.Put(sampleDevice("one", 10))) })
	with(lkB, func() {
		if _, err := b.Get("one"); err != nil {
			t.Fatalf("the other process does not see an append: %v", err)
		}
		mustOK(t, b.Put(sampleDevice("two", 11)))
	})
	with(lkA, func() {
		if _, err := a.Get("two"); err != nil {
			t.Fatalf("the first process does not see the other's append: %v", err)
		}
		mustOK(t, a.Compact())
		mustOK(t, a.Remove("one"))
	})
	with(lkB, func() {
		if got, want := state(t, b), "two=11 del=false labels=map[];"; got != want {
			t.Fatalf("after the other's compaction and removal: %q, want %q", got, want)
		}
	})
}

// internal/testenv.ReadRegistry is the tests' oracle, written from
// docs/registry.md alone: it must read what the registry wrote, across a
// compaction and with a transaction open.
func TestTheDocumentedFormatIsWhatIsWritten(t *testing.T) {
	r := newTestRegistry(t)
	for i := range 300 { // fills the 64 KiB journal about twice
		mustOK(t, r.Put(sampleDevice(fmt.Sprintf("d%03d", i%120), uint32(10+i))))
		if i%9 == 0 {
			mustOK(t, r.Remove(fmt.Sprintf("d%03d", (i+5)%120)))
		}
	}
	d := sampleDevice("open", 999)
	mustOK(t, r.Begin(Tx{Op: OpCreateSnap, DeviceID: 999, OriginDeviceID: 1, ID: "open", Device: &d}))
	want, err := r.List()
	mustOK(t, err)
	got, err := testenv.ReadRegistry(filepath.Dir(r.dir))
	mustOK(t, err)
	if len(got) != len(want) {
		t.Fatalf("the oracle reads %d records, the registry holds %d", len(got), len(want))
	}
	for i := range want {
		if got[i].ID != want[i].ID || got[i].DeviceID != want[i].DeviceID || got[i].Deleted != want[i].Deleted {
			t.Fatalf("record %d: oracle %+v, registry %+v", i, got[i], want[i])
		}
	}
}

func TestAMissingJournalIsCorruptAndSaysWhy(t *testing.T) {
	r := newTestRegistry(t)
	mustOK(t, r.Put(sampleDevice("kept", 5)))
	mustOK(t, os.Remove(r.JournalPath()))
	_, err := reopened(t, r.dir).List()
	if !errors.Is(err, ErrCorrupt) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a missing journal: %v; want both ErrCorrupt and os.ErrNotExist to match", err)
	}
	if _, serr := os.Stat(r.registryPath()); serr != nil {
		t.Fatalf("the registry file is gone after the refusal: %v", serr)
	}
}

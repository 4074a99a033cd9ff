//go:build vm

package thinpool

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/thinctl/thinctl/internal/failpoint"
	"github.com/thinctl/thinctl/internal/testenv"
	"github.com/thinctl/thinctl/internal/thinmeta"
	"github.com/thinctl/thinctl/thinpool/internal/dmthin"
	"github.com/thinctl/thinctl/thinpool/internal/poolmeta"
)

// dumpedMapping is one virtual → data block mapping of thin_dump's XML.
type dumpedMapping struct{ virt, data uint64 }

// thinDumpMappings runs thin_dump -m on a live pool's metadata device (the
// held metadata root the pool keeps) and returns its data block size and each
// device's mappings, one entry per block.
func thinDumpMappings(t *testing.T, metaPath string) (uint32, map[uint32][]dumpedMapping) {
	t.Helper()
	tool := testenv.RequireTool(t, "thin_dump")
	out, err := exec.Command(tool, "-m", metaPath).Output()
	if err != nil {
		t.Fatalf("thin_dump -m %s: %v", metaPath, err)
	}
	dec := xml.NewDecoder(bytes.NewReader(out))
	devs := map[uint32][]dumpedMapping{}
	var blockSize uint32
	var cur uint32
	attr := func(se xml.StartElement, name string) uint64 {
		for _, a := range se.Attr {
			if a.Name.Local == name {
				var v uint64
				if _, err := fmt.Sscan(a.Value, &v); err != nil {
					t.Fatalf("thin_dump: %s=%q", name, a.Value)
				}
				return v
			}
		}
		t.Fatalf("thin_dump: <%s> without %s", se.Name.Local, name)
		return 0
	}
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		switch se.Name.Local {
		case "superblock":
			blockSize = uint32(attr(se, "data_block_size"))
		case "device":
			cur = uint32(attr(se, "dev_id"))
			devs[cur] = []dumpedMapping{}
		case "single_mapping":
			devs[cur] = append(devs[cur], dumpedMapping{attr(se, "origin_block"), attr(se, "data_block")})
		case "range_mapping":
			v, d, n := attr(se, "origin_begin"), attr(se, "data_begin"), attr(se, "length")
			for i := uint64(0); i < n; i++ {
				devs[cur] = append(devs[cur], dumpedMapping{v + i, d + i})
			}
		}
	}
	if blockSize == 0 {
		t.Fatalf("thin_dump printed no superblock:\n%s", out)
	}
	return blockSize, devs
}

// holdMetadataRoot runs fn while p holds the pool's held metadata root, with the
// pool's metadata and data devices.
func holdMetadataRoot(t *testing.T, p *Pool, fn func(metaDev, dataDev string, st dmthin.PoolStatus)) {
	t.Helper()
	must(t, p.lk.Lock())
	defer p.lk.Unlock()
	metaDev, dataDev, err := p.poolTableDevices()
	must(t, err)
	_, err = p.withHeldRoot(func(st dmthin.PoolStatus) error {
		fn(metaDev, dataDev, st)
		return nil
	})
	must(t, err)
}

// writeAt writes n bytes of b at off to device id (activated) and returns
// the device's path.
func writeDevice(t *testing.T, p *Pool, id string, b byte, n int, off int64) string {
	t.Helper()
	path, err := p.Activate(context.Background(), id)
	must(t, err)
	writeAndSync(t, path, b, n, off)
	return path
}

// expectDevice reads back n bytes of b at off from device id.
func expectDevice(t *testing.T, p *Pool, id string, b byte, n int, off int64) {
	t.Helper()
	path, err := p.Activate(context.Background(), id)
	must(t, err)
	f, err := os.Open(path)
	must(t, err)
	defer f.Close()
	got := make([]byte, n)
	if _, err := f.ReadAt(got, off); err != nil {
		t.Fatalf("read %s: %v", id, err)
	}
	if !bytes.Equal(got, bytes.Repeat([]byte{b}, n)) {
		i := 0
		for i < n && got[i] == b {
			i++
		}
		t.Fatalf("device %q at %d: byte %d reads %#x, want %#x (%d bytes written there)", id, off, i, got[i], b, n)
	}
}

// family makes an origin o with data, snapshots s1 (of o) and s2 (of s1)
// that each overwrite part and add more, and s3, an unwritten snapshot of o.
func family(t *testing.T, p *Pool) {
	ctx := context.Background()
	must(t, p.Create(ctx, "o", "", CreateOptions{}))
	writeDevice(t, p, "o", 0x11, 8<<20, 0)
	must(t, p.Deactivate(ctx, "o"))
	must(t, p.Create(ctx, "s1", "o", CreateOptions{}))
	writeDevice(t, p, "s1", 0x22, 2<<20, 1<<20)
	writeDevice(t, p, "s1", 0x23, 3<<20, 32<<20)
	must(t, p.Deactivate(ctx, "s1"))
	must(t, p.Create(ctx, "s2", "s1", CreateOptions{}))
	writeDevice(t, p, "s2", 0x33, 1<<20, 2<<20)
	must(t, p.Deactivate(ctx, "s2"))
	must(t, p.Create(ctx, "s3", "o", CreateOptions{}))
}

// The metadata reader sees what thin_dump (thin-provisioning-tools, the
// oracle) sees in the same held metadata root: the same devices, each with the same
// mappings, on a pool with an origin, written snapshots, a snapshot of a
// snapshot and an unwritten one; and the exclusive blocks it finds for a
// device are exactly its mapped blocks no other device maps.
func TestTheMetadataReaderSeesWhatThinDumpSees(t *testing.T) {
	p, _ := newVMPool(t, smallOptions())
	family(t, p)
	holdMetadataRoot(t, p, func(metaDev, dataDev string, st dmthin.PoolStatus) {
		metaPath, err := p.metadataDevicePath()
		must(t, err)
		wantBlockSize, want := thinDumpMappings(t, metaPath)
		got := map[uint32][]dumpedMapping{}
		exclusive := map[uint32][]uint64{}
		err = poolmeta.ReadHeld(metaDev, 0, func(m *thinmeta.Reader, sb thinmeta.Superblock) error {
			if sb.DataBlockSize != wantBlockSize {
				t.Errorf("data block size %d sectors, thin_dump says %d", sb.DataBlockSize, wantBlockSize)
			}
			devs, err := m.Devices(sb)
			if err != nil {
				return err
			}
			for id, root := range devs {
				ms, err := m.Mappings(root, st.DataTotal)
				if err != nil {
					return err
				}
				got[id] = []dumpedMapping{}
				for _, x := range ms {
					got[id] = append(got[id], dumpedMapping{x.Virtual, x.Data})
				}
				if exclusive[id], err = m.Exclusive(sb, id, st.DataTotal); err != nil {
					return err
				}
			}
			t.Logf("%d devices, %d nodes read", len(devs), m.NodeReads())
			return nil
		})
		must(t, err)
		if len(got) != len(want) || len(want) != 5 {
			t.Fatalf("the reader sees devices %v, thin_dump %v (want 5: base, o, s1, s2, s3)", keys(got), keys(want))
		}
		owners := map[uint64]int{}
		for id, w := range want {
			if fmt.Sprint(got[id]) != fmt.Sprint(w) {
				t.Errorf("thin id %d: the reader sees %d mappings, thin_dump %d; they differ", id, len(got[id]), len(w))
			}
			for _, x := range w {
				owners[x.data]++
			}
		}
		for id, w := range want {
			var wantEx []uint64
			for _, x := range w {
				if owners[x.data] == 1 {
					wantEx = append(wantEx, x.data)
				}
			}
			sort.Slice(wantEx, func(i, j int) bool { return wantEx[i] < wantEx[j] })
			if fmt.Sprint(exclusive[id]) != fmt.Sprint(wantEx) {
				t.Errorf("thin id %d: exclusive blocks %v, thin_dump's mappings say %v", id, exclusive[id], wantEx)
			}
			t.Logf("thin id %d: %d mappings, %d exclusive", id, len(w), len(wantEx))
		}
	})
}

func keys(m map[uint32][]dumpedMapping) []uint32 {
	var out []uint32
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// recordPlans records how each space return went (hookReturnPlan).
func recordPlans(t *testing.T) func() []string {
	var mu sync.Mutex
	var plans []string
	hookReturnPlan = func(devID uint32, plan, detail string) {
		mu.Lock()
		defer mu.Unlock()
		plans = append(plans, strings.TrimSpace(plan+" "+detail))
	}
	t.Cleanup(func() { hookReturnPlan = nil })
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), plans...)
	}
}

// countOps counts the kernel operations p makes, by the dm client's name
// for them ("create" is DM_DEV_CREATE, "message" DM_TARGET_MSG).
func countOps(t *testing.T, p *Pool) func(op string) int {
	var mu sync.Mutex
	n := map[string]int{}
	p.dm.SetLogger(func(format string, args ...any) {
		line := strings.TrimPrefix(fmt.Sprintf(format, args...), "dm: ")
		mu.Lock()
		n[strings.SplitN(line, " ", 2)[0]]++
		mu.Unlock()
	})
	t.Cleanup(func() { p.dm.SetLogger(nil) })
	return func(op string) int { mu.Lock(); defer mu.Unlock(); return n[op] }
}

// The space return of an inactive device with blocks of its own and blocks
// it shares punches holes for its own only: the data file shrinks by about
// them, its origin and its sibling read back every byte written to them,
// a device written afterwards reads back its bytes, thin_check passes and
// thin_dump no longer lists it; no device-mapper device is created.
func TestTheReturnOfAnInactiveDevicePunchesOnlyItsOwnBlocks(t *testing.T) {
	ctx := context.Background()
	p, root := newVMPool(t, smallOptions())
	plans := recordPlans(t)
	must(t, p.Create(ctx, "o", "", CreateOptions{}))
	writeDevice(t, p, "o", 0x11, 8<<20, 0)
	must(t, p.Deactivate(ctx, "o"))
	must(t, p.Create(ctx, "d", "o", CreateOptions{}))
	must(t, p.Create(ctx, "sib", "o", CreateOptions{}))
	writeDevice(t, p, "d", 0x22, 4<<20, 0)      // over o's first 4 MiB: its own copies
	writeDevice(t, p, "d", 0x23, 6<<20, 64<<20) // new blocks
	writeDevice(t, p, "sib", 0x33, 2<<20, 2<<20)
	must(t, p.Deactivate(ctx, "d"))
	must(t, p.Deactivate(ctx, "sib"))
	must(t, p.Deactivate(ctx, "o"))
	dID := mustDeviceID(t, p, "d")
	data := p.dataFilePath()
	before := allocated(t, data)

	ops := countOps(t, p)
	must(t, p.Remove(ctx, "d"))
	must(t, p.ReturnSpace(ctx))
	if n := ops("create"); n != 0 {
		t.Errorf("the return made %d DM_DEV_CREATE calls, want none", n)
	}
	if got := plans(); len(got) != 1 || got[0] != planPunch {
		t.Fatalf("return plans %q, want [%s]", got, planPunch)
	}
	after := allocated(t, data)
	freed := before - after
	t.Logf("data file: %d KiB before, %d KiB after: %d KiB given back (d owned 10240 KiB)", before>>10, after>>10, freed>>10)
	if freed < 10<<20 || freed > 10<<20+2*int64(p.cfg.BlockSize) {
		t.Errorf("the data file gave back %d KiB, want about 10240 (d's own blocks)", freed>>10)
	}
	expectDevice(t, p, "o", 0x11, 8<<20, 0)
	expectDevice(t, p, "sib", 0x11, 2<<20, 0)
	expectDevice(t, p, "sib", 0x33, 2<<20, 2<<20)
	expectDevice(t, p, "sib", 0x11, 4<<20, 4<<20)
	must(t, p.Create(ctx, "n", "", CreateOptions{}))
	writeDevice(t, p, "n", 0x44, 12<<20, 0)
	expectDevice(t, p, "n", 0x44, 12<<20, 0)
	expectDevice(t, p, "o", 0x11, 8<<20, 0)
	for _, id := range []string{"o", "sib", "n"} {
		must(t, p.Deactivate(ctx, id))
	}
	for _, id := range thinDumpIDsOf(t, p, root) {
		if id == dID {
			t.Fatalf("thin id %d of the removed d is still in the pool", dID)
		}
	}
	thinCheck(t, p.metaFilePath())
}

// An unwritten snapshot has no block of its own: its return creates no
// device-mapper device, reserves no held metadata root (the live metadata
// shows its tree is its origin's), discards nothing and deletes it.
func TestTheReturnOfAnUnwrittenSnapshotCreatesNoDevice(t *testing.T) {
	ctx := context.Background()
	p, root := newVMPool(t, smallOptions())
	plans := recordPlans(t)
	must(t, p.Create(ctx, "o", "", CreateOptions{}))
	writeDevice(t, p, "o", 0x11, 4<<20, 0)
	must(t, p.Deactivate(ctx, "o"))
	must(t, p.Create(ctx, "s", "o", CreateOptions{}))
	sID := mustDeviceID(t, p, "s")
	before := allocated(t, p.dataFilePath())
	ops := countOps(t, p)
	opened := false
	hookBeforeDiscardOpen = func(string) { opened = true }
	t.Cleanup(func() { hookBeforeDiscardOpen = nil })
	must(t, p.Remove(ctx, "s"))
	must(t, p.ReturnSpace(ctx))
	if n := ops("create"); n != 0 || opened {
		t.Errorf("the return made %d DM_DEV_CREATE calls and opened a device: %v; want none", n, opened)
	}
	// The live metadata shows its tree shared: no held metadata root is
	// reserved; the one message is the delete.
	if n := ops("message"); n != 1 {
		t.Errorf("the return sent %d pool messages, want 1 (delete)", n)
	}
	if got := plans(); len(got) != 1 || got[0] != planSkip {
		t.Fatalf("return plans %q, want [%s]", got, planSkip)
	}
	if after := allocated(t, p.dataFilePath()); after != before {
		t.Errorf("the data file went from %d to %d KiB; an unwritten snapshot frees nothing", before>>10, after>>10)
	}
	expectDevice(t, p, "o", 0x11, 4<<20, 0)
	must(t, p.Deactivate(ctx, "o"))
	for _, id := range thinDumpIDsOf(t, p, root) {
		if id == sID {
			t.Fatalf("thin id %d of the removed s is still in the pool", sID)
		}
	}
}

// With the held metadata root held by another program, the return takes the
// discard way: the space still comes back, and the root stays held.
func TestAHeldMetadataRootHeldElsewhereLeavesTheDiscardWay(t *testing.T) {
	ctx := context.Background()
	p, _ := newVMPool(t, smallOptions())
	plans := recordPlans(t)
	must(t, p.Create(ctx, "d", "", CreateOptions{}))
	writeDevice(t, p, "d", 0x22, 8<<20, 16<<20)
	must(t, p.Deactivate(ctx, "d"))
	before := allocated(t, p.dataFilePath())
	mustDmsetup(t, "message", p.cfg.PoolName, "0", "reserve_metadata_snap")
	held := heldRoot(t, p.cfg.PoolName)
	t.Cleanup(func() { dmsetup(t, "message", p.cfg.PoolName, "0", "release_metadata_snap") })
	must(t, p.Remove(ctx, "d"))
	must(t, p.ReturnSpace(ctx))
	if got := plans(); len(got) != 1 || !strings.HasPrefix(got[0], planFallback+" another program holds") {
		t.Fatalf("return plans %q, want a fallback because another program holds the metadata root", got)
	}
	if freed := before - allocated(t, p.dataFilePath()); freed < 8<<20 {
		t.Errorf("the data file gave back %d KiB, want 8192", freed>>10)
	}
	if h := heldRoot(t, p.cfg.PoolName); h != held {
		t.Errorf("the metadata root held elsewhere is now %q, want %q still", h, held)
	}
}

// A device-mapper device of another name that maps the removed device's
// thin id makes it busy: nothing is punched or discarded under it (it
// reads back its bytes), the device stays counted as returning space, and
// once that device is gone the next return punches and deletes.
func TestADeviceOfAnotherNameMappingTheThinIDKeepsItsBlocks(t *testing.T) {
	ctx := context.Background()
	p, _ := newVMPool(t, smallOptions())
	plans := recordPlans(t)
	must(t, p.Create(ctx, "d", "", CreateOptions{}))
	writeDevice(t, p, "d", 0x22, 4<<20, 0)
	must(t, p.Deactivate(ctx, "d"))
	dID := mustDeviceID(t, p, "d")
	poolDev, err := p.poolDev()
	must(t, err)
	other := fmt.Sprintf("metaret-other-%d", dID)
	mustDmsetup(t, "create", other, "--table", fmt.Sprintf("0 %d thin %s %d", 64<<11, dmthin.DevString(poolDev), dID))
	t.Cleanup(func() { dmsetup(t, "remove", other) })
	must(t, p.Remove(ctx, "d"))
	must(t, p.ReturnSpace(ctx)) // a busy device is no error: it stays counted
	got := plans()
	if len(got) == 0 || !strings.HasPrefix(got[0], planBusy+" ") || !strings.Contains(got[0], other) {
		t.Fatalf("return plans %q, want busy, naming %s", got, other)
	}
	st, err := p.Status()
	must(t, err)
	if st.ReturningDevices != 1 {
		t.Fatalf("%d devices return space, want 1 (the busy one)", st.ReturningDevices)
	}
	f, err := os.Open("/dev/mapper/" + other)
	must(t, err)
	b := make([]byte, 4<<20)
	_, err = f.ReadAt(b, 0)
	f.Close()
	must(t, err)
	if !bytes.Equal(b, bytes.Repeat([]byte{0x22}, 4<<20)) {
		t.Fatal("the other device no longer reads back d's bytes")
	}
	mustDmsetup(t, "remove", other)
	must(t, p.ReturnSpace(ctx))
	if got := plans(); got[len(got)-1] != planPunch {
		t.Fatalf("return plans %q, want a punch once the other device is gone", got)
	}
	if st, err = p.Status(); err != nil || st.ReturningDevices != 0 {
		t.Fatalf("Status after the return: %d returning, %v", st.ReturningDevices, err)
	}
}

// A crash between the punch and the delete leaves the device returning
// space; the next Open punches again and deletes it, and nothing else is
// lost.
func TestACrashBetweenPunchAndDeleteIsFinishedByTheNextOpen(t *testing.T) {
	ctx := context.Background()
	p, root := newVMPool(t, smallOptions())
	must(t, p.Create(ctx, "o", "", CreateOptions{}))
	writeDevice(t, p, "o", 0x11, 4<<20, 0)
	must(t, p.Deactivate(ctx, "o"))
	must(t, p.Create(ctx, "d", "o", CreateOptions{}))
	writeDevice(t, p, "d", 0x22, 6<<20, 32<<20)
	must(t, p.Deactivate(ctx, "d"))
	dID := mustDeviceID(t, p, "d")
	before := allocated(t, p.dataFilePath())

	must(t, failpoint.Enable(failpoint.ReturnAfterPunch+"=error"))
	t.Cleanup(failpoint.Disable)
	must(t, p.Remove(ctx, "d"))
	if err := p.ReturnSpace(ctx); err == nil {
		t.Fatal("ReturnSpace with the failpoint armed succeeded")
	}
	failpoint.Disable()
	st, err := p.Status()
	must(t, err)
	if st.ReturningDevices != 1 {
		t.Fatalf("after the failure %d devices return space, want 1", st.ReturningDevices)
	}
	must(t, p.Close())

	plans := recordPlans(t)
	q, err := Open(ctx, root, OpenOptions{})
	must(t, err)
	defer q.Close()
	must(t, q.ReturnSpace(ctx))
	if got := plans(); len(got) != 1 || got[0] != planPunch {
		t.Fatalf("return plans after the reopen %q, want [%s]", got, planPunch)
	}
	if freed := before - allocated(t, q.dataFilePath()); freed < 6<<20 {
		t.Errorf("the data file gave back %d KiB, want 6144", freed>>10)
	}
	expectDevice(t, q, "o", 0x11, 4<<20, 0)
	must(t, q.Deactivate(ctx, "o"))
	for _, id := range thinDumpIDsOf(t, q, root) {
		if id == dID {
			t.Fatalf("thin id %d of the removed d is still in the pool", dID)
		}
	}
}

// In an external pool (here over a loop device thinctl did not bind) the
// blocks of a removed inactive device are not punched: its return takes
// the discard way, and the pool's passdown still gives the data file its
// space back.
func TestTheReturnInAnExternalPoolTakesTheDiscardWay(t *testing.T) {
	testenv.RequireDeviceMapper(t)
	ctx := context.Background()
	data, _, dataDev, metaDev := rawDevices(t)
	name := "metaret-ext-pool"
	mustDmsetup(t, "create", name, "--table", fmt.Sprintf("0 %d thin-pool %s %s 128 32768 1 skip_block_zeroing", GiB/512, metaDev, dataDev))
	t.Cleanup(func() { dmsetup(t, "remove", name) })
	p, err := Init(ctx, t.TempDir(), Options{ThinPoolDevice: name, BaseSize: 256 * MiB})
	must(t, err)
	t.Cleanup(func() { p.Destroy(context.Background(), true) })
	plans := recordPlans(t)
	must(t, p.Create(ctx, "o", "", CreateOptions{}))
	writeDevice(t, p, "o", 0x11, 4<<20, 0)
	must(t, p.Create(ctx, "d", "o", CreateOptions{}))
	writeDevice(t, p, "d", 0x22, 8<<20, 32<<20)
	must(t, p.Deactivate(ctx, "d"))
	before := allocated(t, data)
	must(t, p.Remove(ctx, "d"))
	must(t, p.ReturnSpace(ctx))
	if got := plans(); len(got) != 1 || !strings.HasPrefix(got[0], planFallback+" the pool's data device is not a loop file thinctl made") {
		t.Fatalf("return plans %q, want a fallback for the external pool", got)
	}
	if freed := before - allocated(t, data); freed < 8<<20 {
		t.Errorf("the data file gave back %d KiB, want 8192", freed>>10)
	}
	expectDevice(t, p, "o", 0x11, 4<<20, 0)
}

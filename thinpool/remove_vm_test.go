//go:build vm

package thinpool

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/thinctl/thinctl/dm"
	"github.com/thinctl/thinctl/thinpool/internal/dmname"
)

// A process that holds a device open — a virtual machine given the block
// device, a backup reading it — must keep reading what was written while a
// removal waits for it; the space comes back once it lets go and GC runs.
// Before the fix, Remove discarded every block first (O_EXCL does not see a
// plain opener) and the holder read zeros.
func TestRemoveOfAHeldDeviceKeepsItsDataUntilTheHolderLetsGo(t *testing.T) {
	ctx := context.Background()
	p, _ := newVMPool(t, smallOptions())
	data := p.dataFilePath()
	path, _ := createActive(t, p, "held")

	const size = 4 << 20
	pattern := bytes.Repeat([]byte("thinctl keeps a held device's data "), size/35+1)[:size]
	const offset = 64 << 20 // past the filesystem's own metadata
	dev, err := os.OpenFile(path, os.O_WRONLY, 0)
	must(t, err)
	if _, err := dev.WriteAt(pattern, offset); err != nil {
		t.Fatal(err)
	}
	must(t, dev.Sync())
	must(t, dev.Close())
	before := allocated(t, data)

	// The holder: a shell with the device open on fd 3 that, when told,
	// reads the pattern's range back through that descriptor.
	holder := exec.Command("bash", "-c", `exec 3<"$1"; read -r go; `+
		`dd bs=1M skip=64 count=4 <&3 2>/dev/null | sha256sum; read -r done`, "holder", path)
	in, err := holder.StdinPipe()
	must(t, err)
	var out bytes.Buffer
	holder.Stdout = &out
	must(t, holder.Start())
	t.Cleanup(func() { holder.Process.Kill(); holder.Wait() })
	name := dmname.Thin(p.cfg.Key, mustDeviceID(t, p, "held"))
	// The holder's own descriptor, not just an open count (udev's probe
	// after the activation opens the device too). Until bash has run,
	// fd 3 may be Go's exec status pipe ("pipe:[…]"): only a device node
	// counts.
	waitFor(t, "the holder to open the device", func() bool {
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/3", holder.Process.Pid))
		return err == nil && strings.HasPrefix(link, "/dev/")
	})
	if info, err := p.dm.Info(name); err != nil || info.OpenCount == 0 {
		t.Fatalf("the held device has open count %d (%v)", info.OpenCount, err)
	}

	err = p.Remove(ctx, "held")
	if !isErr(err, ErrDeferred) {
		t.Fatalf("Remove of a held device = %v, want ErrDeferred", err)
	}
	if !strings.Contains(err.Error(), "bash") {
		t.Errorf("the deferral does not name the holder: %v", err)
	}
	d, err := p.Device("held")
	must(t, err)
	if !d.Deleted {
		t.Fatalf("the record of a deferred removal is not marked deleted: %+v", d)
	}
	if got := allocated(t, data); got < before {
		t.Fatalf("the data file shrank by %d KiB while the device was held: its blocks were discarded", (before-got)>>10)
	}

	fmt.Fprintln(in, "go")
	want := sha256.Sum256(pattern)
	waitFor(t, "the holder's read", func() bool { return strings.Contains(out.String(), "-") })
	if got := strings.Fields(out.String()); len(got) == 0 || got[0] != hex.EncodeToString(want[:]) {
		t.Fatalf("the holder read back sha256 %v after the deferred removal, want %x (the pattern written)", got, want)
	}
	fmt.Fprintln(in, "done")
	must(t, holder.Wait())

	// The kernel removes the device at the holder's last close; GC then
	// discards and deletes it, and the data file gives the space back.
	waitFor(t, "the kernel's deferred removal", func() bool {
		_, err := p.dm.Info(name)
		return isErr(err, dm.ErrNotFound)
	})
	removed, err := p.GC(ctx)
	must(t, err)
	if fmt.Sprint(removed) != "[held]" {
		t.Fatalf("GC removed %v, want [held]", removed)
	}
	after := allocated(t, data)
	t.Logf("data file: %d KiB allocated while held, %d KiB after GC", before>>10, after>>10)
	if before-after < size-int64(p.cfg.BlockSize) {
		t.Fatalf("GC gave back %d KiB of the data file, want about %d KiB", (before-after)>>10, size>>10)
	}
	if _, err := p.Device("held"); !isErr(err, ErrDeviceNotFound) {
		t.Fatalf("Device after GC = %v, want ErrDeviceNotFound", err)
	}
}

func mustDeviceID(t *testing.T, p *Pool, id string) uint32 {
	t.Helper()
	d, err := p.Device(id)
	must(t, err)
	return d.DeviceID
}

// udev replaces /dev/mapper/<name> while it processes a change event, so
// the link can be missing for a moment (a CI run failed with "open
// /dev/mapper/thinctl-…: no such file or directory" in the discard). The
// discard opens the kernel's /dev/dm-N instead; here the link is gone
// exactly when the discard opens the device.
func TestRemoveDoesNotNeedUdevsMapperLink(t *testing.T) {
	ctx := context.Background()
	p, _ := newVMPool(t, smallOptions())
	data := p.dataFilePath()
	path, _ := createActive(t, p, "linkless")
	dev, err := os.OpenFile(path, os.O_WRONLY, 0)
	must(t, err)
	_, err = dev.WriteAt(bytes.Repeat([]byte{0xa5}, 8<<20), 32<<20)
	must(t, err)
	must(t, dev.Sync())
	must(t, dev.Close())
	before := allocated(t, data)

	var removed string
	hookBeforeDiscardOpen = func(mapperPath string) {
		if removed != "" {
			return // a second try (the background's was stopped by ReturnSpace)
		}
		removed = mapperPath
		if err := os.Remove(mapperPath); err != nil {
			t.Errorf("remove %s: %v", mapperPath, err)
		}
	}
	defer func() { hookBeforeDiscardOpen = nil }()
	must(t, p.Remove(ctx, "linkless"))
	must(t, p.ReturnSpace(ctx))
	if removed == "" {
		t.Fatal("the discard never ran; the test proves nothing")
	}
	if after := allocated(t, data); before-after < 8<<20-int64(p.cfg.BlockSize) {
		t.Fatalf("the data file gave back %d KiB after Remove, want about 8192 KiB", (before-after)>>10)
	}
}

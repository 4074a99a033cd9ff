//go:build vm

package dm

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestALinearMappingOverALoopDeviceReadsBackAndWritesThrough(t *testing.T) {
	c := vmClient(t)
	loop := loopDevice(t, 8<<20)
	ld := majMin(loop.Dev)
	// Two halves of the loop device, swapped.
	table := []Target{
		{Start: 0, Length: 8192, Type: "linear", Params: ld + " 8192"},
		{Start: 8192, Length: 8192, Type: "linear", Params: ld + " 0"},
	}
	name := devName(t)
	activate(t, c, name, table, LoadOptions{})
	wantTable(t, c, name, table)
	wantInfoMatchesDmsetup(t, c, name)
	deps, err := c.Deps(name)
	if err != nil {
		t.Fatal(err)
	}
	if len(deps) != 1 || deps[0] != loop.Dev {
		t.Fatalf("Deps = %v, want [%s]", deps, ld)
	}
	if oracle := dmsetup(t, "deps", name); !strings.Contains(oracle, "1 dependencies") || !strings.Contains(strings.ReplaceAll(oracle, " ", ""), "("+strings.ReplaceAll(ld, ":", ",")+")") {
		t.Errorf("dmsetup deps = %q, want one dependency on %s", oracle, ld)
	}
	st, err := c.Status(name, StatusOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if oracle := dmsetupTable(t, "status", name); formatTable(st) != oracle {
		t.Errorf("Status = %q, dmsetup status = %q", formatTable(st), oracle)
	}

	pattern := bytes.Repeat([]byte("thinctl!"), 512)
	w, err := os.OpenFile(NodePath(name), os.O_WRONLY|os.O_SYNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = w.WriteAt(pattern, 0) // sector 0 of the mapping is sector 8192 of the loop
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	// Read the loop device around its page cache, which udev's probe may
	// have filled before the write went through the mapping.
	fd, err := unix.Open(loop.Path, unix.O_RDONLY|unix.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	got, err := unix.Mmap(-1, 0, len(pattern), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(got)
	if _, err := unix.Pread(fd, got, 8192*512); err != nil || !bytes.Equal(got, pattern) {
		t.Fatalf("the loop device does not hold the data at the mapped offset (err %v)", err)
	}
}

func TestATableOfFiveHundredTargetsReadsBackWhole(t *testing.T) {
	c := vmClient(t)
	loop := loopDevice(t, 4<<20)
	ld := majMin(loop.Dev)
	var table []Target
	for i := uint64(0); i < 500; i++ {
		tg := Target{Start: i * 16, Length: 16, Type: "zero"}
		if i%2 == 1 {
			tg = Target{Start: i * 16, Length: 16, Type: "linear", Params: fmt.Sprintf("%s %d", ld, i*16)}
		}
		table = append(table, tg)
	}
	name := devName(t)
	info := activate(t, c, name, table, LoadOptions{})
	if info.TargetCount != 500 {
		t.Fatalf("Info.TargetCount = %d", info.TargetCount)
	}
	wantTable(t, c, name, table)
	st, err := c.Status(name, StatusOptions{})
	if err != nil || len(st) != 500 {
		t.Fatalf("Status: %d targets, %v", len(st), err)
	}
}

func TestATableTheKernelRejectsCarriesTheKernelsReason(t *testing.T) {
	c := vmClient(t)
	name := devName(t)
	if _, err := c.Create(name, CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	removeOnCleanup(t, c, name)
	err := c.LoadTable(name, []Target{{Start: 0, Length: 2048, Type: "linear", Params: "/dev/does-not-exist 0"}}, LoadOptions{})
	if !errors.Is(err, ErrInvalidTable) {
		t.Fatalf("LoadTable = %v, want ErrInvalidTable", err)
	}
	var de *Error
	if !errors.As(err, &de) || !strings.Contains(de.Kernel, "device-mapper:") || !strings.Contains(de.Kernel, "linear") {
		t.Fatalf("error %q does not carry the kernel's reason", err)
	}
	t.Logf("kernel reason: %s", de.Kernel)

	err = c.LoadTable(name, []Target{{Start: 0, Length: 2048, Type: "no-such-target"}}, LoadOptions{})
	if !errors.Is(err, ErrInvalidTable) || !strings.Contains(err.Error(), "device-mapper:") {
		t.Fatalf("unknown target type: %v", err)
	}
	// The second load reads the log through the descriptor the first one
	// gave back: from its own start, so without the first one's reason.
	if strings.Contains(err.Error(), "linear") {
		t.Fatalf("the second rejection repeats the first one's reason: %v", err)
	}
	t.Logf("unknown target: %v", err)
	err = c.LoadTable(devName(t), []Target{{Start: 0, Length: 8, Type: "zero"}}, LoadOptions{})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("loading into a missing device = %v, want ErrNotFound", err)
	}
	if info, err := c.Info(name); err != nil || info.InactiveTable {
		t.Fatalf("after rejected loads Info = %+v, %v; want no inactive table", info, err)
	}
}

func TestClearTableDropsTheInactiveTable(t *testing.T) {
	c := vmClient(t)
	name := devName(t)
	activate(t, c, name, []Target{{Start: 0, Length: 2048, Type: "zero"}}, LoadOptions{})
	if err := c.LoadTable(name, []Target{{Start: 0, Length: 4096, Type: "error"}}, LoadOptions{}); err != nil {
		t.Fatal(err)
	}
	if info := wantInfoMatchesDmsetup(t, c, name); !info.InactiveTable || !info.LiveTable {
		t.Fatalf("Info = %+v, want live and inactive tables", info)
	}
	if err := c.ClearTable(name); err != nil {
		t.Fatal(err)
	}
	if info := wantInfoMatchesDmsetup(t, c, name); info.InactiveTable || !info.LiveTable {
		t.Fatalf("after ClearTable Info = %+v", info)
	}
	wantTable(t, c, name, []Target{{Start: 0, Length: 2048, Type: "zero"}})
}

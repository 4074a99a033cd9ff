package dm

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestProcMiscYieldsTheDeviceMapperMinor(t *testing.T) {
	cases := []struct {
		name  string
		text  string
		minor uint32
		ok    bool
	}{
		{"a typical list", "183 hw_random\n236 device-mapper\n 58 network_throughput\n", 236, true},
		{"padded numbers", "  1 psaux\n 60 device-mapper\n", 60, true},
		{"no device-mapper", "183 hw_random\n229 fuse\n", 0, false},
		{"a similar name does not count", "236 device-mapper-x\n", 0, false},
		{"garbage", "x device-mapper\n", 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, ok := parseProcMisc(tc.text)
			if m != tc.minor || ok != tc.ok {
				t.Fatalf("parseProcMisc = %d, %v; want %d, %v", m, ok, tc.minor, tc.ok)
			}
		})
	}
}

func TestMakeNodeReplacesAStaleNodeAndKeepsAGoodOne(t *testing.T) {
	c := newClient()
	c.devDir = filepath.Join(t.TempDir(), "mapper") // made on demand
	dev := unix.Mkdev(253, 5)
	if err := c.makeNode("v", dev); err != nil {
		t.Fatal(err)
	}
	wantBlockNode(t, c.nodePath("v"), dev)
	var before unix.Stat_t
	_ = unix.Lstat(c.nodePath("v"), &before)
	if err := c.makeNode("v", dev); err != nil {
		t.Fatal(err)
	}
	var after unix.Stat_t
	_ = unix.Lstat(c.nodePath("v"), &after)
	if before.Ino != after.Ino {
		t.Error("a correct node was replaced")
	}
	if err := c.makeNode("v", unix.Mkdev(253, 6)); err != nil {
		t.Fatal(err)
	}
	wantBlockNode(t, c.nodePath("v"), unix.Mkdev(253, 6))
	if err := os.WriteFile(c.nodePath("f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.makeNode("f", dev); err != nil {
		t.Fatal(err)
	}
	wantBlockNode(t, c.nodePath("f"), dev)
	c.dropStaleNode("f")
	if _, err := os.Lstat(c.nodePath("f")); !os.IsNotExist(err) {
		t.Fatal("dropStaleNode left a block node")
	}
	if err := c.unlinkNode("never-made"); err != nil {
		t.Fatalf("unlinking a missing node: %v", err)
	}
}

func TestWithoutDeviceMapperTheClientSaysSo(t *testing.T) {
	if _, err := os.Stat("/dev/mapper/control"); err == nil {
		t.Skip("this machine has device-mapper")
	}
	misc, _ := os.ReadFile(procMisc)
	if _, ok := parseProcMisc(string(misc)); ok {
		t.Skip("this kernel has device-mapper")
	}
	_, err := open(filepath.Join(t.TempDir(), "control"))
	if err == nil {
		t.Fatal("open succeeded without device-mapper")
	}
	if !isNotSupported(err) {
		t.Fatalf("open = %v, want ErrNotSupported", err)
	}
}

func isNotSupported(err error) bool { return errors.Is(err, ErrNotSupported) }

//go:build vm

package reliability

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// dmState is `dmsetup table` for the root's devices plus the registry
// files' bytes and the backing files' sizes: what bad input must not touch.
func (r *rig) dmState(t *testing.T) map[string]string {
	t.Helper()
	st := treeDigest(t, filepath.Join(r.root, "devicemapper"), 1<<20)
	out, err := exec.Command("dmsetup", "table").CombinedOutput()
	if err != nil {
		t.Fatalf("dmsetup table: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, rootPrefix(r.key)) {
			st["dm "+line] = "live"
		}
	}
	return st
}

// TestReliabilityBadInputDevicemapper runs the bad command lines against
// a devicemapper pool, plus the input only devicemapper has.
func TestReliabilityBadInputDevicemapper(t *testing.T) {
	r := newPoolRig(t, "")
	r.must("create", "a")
	r.writeData(t, "a", "a\n")
	// The usage errors never reach the kernel and are checked on the host
	// (TestReliabilityBadInputOverlay2); here only under full, plus the
	// cases that consult the pool.
	var cases []badInput
	for _, c := range idAndSizeCases() {
		if full || c.code != 2 {
			cases = append(cases, c)
		}
	}
	cases = append(cases,
		badInput{"a block size that is not a multiple of 64K is a usage error", []string{"pool", "init", "--block-size", "96K"}, 2, "--block-size"},
		badInput{"a block size of zero is a usage error", []string{"pool", "init", "--block-size", "0"}, 2, "--block-size"},
		badInput{"a block size above 1G is a usage error", []string{"pool", "init", "--block-size", "2G"}, 2, "--block-size"},
		badInput{"a second pool init on the root fails", []string{"pool", "init"}, 1, "already"},
		badInput{"a pool grow that shrinks fails", []string{"pool", "grow", "--data-size", "512M"}, 1, "shrink"},
		badInput{"a pool grow without sizes is a usage error", []string{"pool", "grow"}, 2, "size"},
		badInput{"removing a device with snapshots fails", []string{"remove", "a"}, 1, "snapshot"},
	)
	r.must("create", "a-child", "--parent", "a")
	assertRefused(t, r, cases, func() map[string]string { return r.dmState(t) })

	t.Run("a size larger than the pool is refused", func(t *testing.T) {
		r.t = t
		before := r.dmState(t)
		res := r.run("create", "huge", "--size", "64T")
		if res.code != 1 || !strings.Contains(res.stderr, "pool") {
			t.Errorf("create --size 64T on a 1G pool: want exit 1 explaining the pool is smaller, got %s", res)
			r.run("remove", "huge")
		}
		if d := diffDigest(before, r.dmState(t)); d != "" {
			t.Errorf("state changed:\n%s", d)
		}
		r.assertConsistent(t)
	})

	t.Run("an unaligned size is rounded up to 4 KiB", func(t *testing.T) {
		r.t = t
		want := uint64(64<<20 + 1)
		r.must("create", "odd", "--size", fmt.Sprint(want))
		for _, d := range r.list() {
			if d.ID == "odd" && (d.SizeBytes < want || d.SizeBytes%4096 != 0) {
				t.Errorf("odd has %d bytes, want the next 4 KiB multiple of %d", d.SizeBytes, want)
			}
		}
		r.must("remove", "odd")
	})

	t.Run("a corrupt registry file is refused, named and left alone", func(t *testing.T) {
		reg := filepath.Join(r.root, "devicemapper", "registry")
		jrnl := filepath.Join(r.root, "devicemapper", "journal")
		pool := filepath.Join(r.root, "devicemapper", "pool.json")
		origReg, err := os.ReadFile(reg)
		if err != nil {
			t.Fatal(err)
		}
		origJrnl, err := os.ReadFile(jrnl)
		if err != nil {
			t.Fatal(err)
		}
		origPool, err := os.ReadFile(pool)
		if err != nil {
			t.Fatal(err)
		}
		// The first frame of the journal (at byte 64) with a flipped bit:
		// the frames after it were written once it was durable.
		badFrame := append([]byte(nil), origJrnl...)
		badFrame[64+48] ^= 0x20
		newer := append([]byte(nil), origReg...)
		newer[8] = 9
		for _, c := range []struct {
			name, file string
			content    []byte
		}{
			{"a damaged frame before the journal's last ones", jrnl, badFrame},
			{"a journal cut short", jrnl, origJrnl[:len(origJrnl)/2]},
			{"an empty journal", jrnl, nil},
			{"a truncated registry file", reg, origReg[:len(origReg)/2]},
			{"an empty registry file", reg, nil},
			{"a garbage registry file", reg, []byte("\x00\xff garbage {{{")},
			{"a registry file from a newer thinctl", reg, newer},
			{"a truncated pool.json", pool, origPool[:len(origPool)/3]},
			{"a garbage pool.json", pool, []byte("not json")},
		} {
			t.Run(c.name, func(t *testing.T) {
				r.t = t
				restore, _ := os.ReadFile(c.file)
				_, existed := os.Stat(c.file)
				t.Cleanup(func() {
					if existed == nil {
						os.WriteFile(c.file, restore, 0o600)
					} else {
						os.Remove(c.file)
					}
				})
				if err := os.WriteFile(c.file, c.content, 0o600); err != nil {
					t.Fatal(err)
				}
				before := r.dmState(t)
				// check --repair included: it must not "repair" by
				// rewriting or dropping the file.
				for _, args := range [][]string{{"list"}, {"create", "new"}, {"pool", "up"}, {"check", "--repair"}} {
					res := r.run(args...)
					if res.code != 1 || !strings.Contains(res.stderr, filepath.Base(c.file)) {
						t.Errorf("want exit 1 naming %s, got %s", filepath.Base(c.file), res)
					}
					if strings.Contains(res.stderr, "hint:") && strings.Contains(res.stderr, "check --repair") {
						t.Errorf("the hint sends the user to check --repair, which stops at the same file: %s", res)
					}
				}
				if d := diffDigest(before, r.dmState(t)); d != "" {
					t.Errorf("state changed:\n%s", d)
				}
				if got, _ := os.ReadFile(c.file); string(got) != string(c.content) {
					t.Errorf("%s was rewritten: %q", c.file, got)
				}
			})
		}
		r.t = t
		r.assertConsistent(t)
		if got := r.readData(t, "a", false); got != "a\n" {
			t.Errorf("a holds %q after the registry was restored", got)
		}
	})

	// libdevmapper recreates a missing control node from
	// /sys/class/misc/device-mapper/dev; thinctl may do the same, or fail
	// naming the node. Either way nothing changes.
	t.Run("without /dev/mapper/control commands work or fail naming it, and change nothing", func(t *testing.T) {
		r.t = t
		before := r.dmState(t)
		if err := os.Rename("/dev/mapper/control", "/dev/mapper/.control-away"); err != nil {
			t.Skipf("cannot move /dev/mapper/control away: %v", err)
		}
		restored := false
		restore := func() {
			if !restored {
				os.Rename("/dev/mapper/.control-away", "/dev/mapper/control")
				restored = true
			}
		}
		defer restore()
		for _, args := range [][]string{{"list"}, {"pool", "status"}, {"info", "a"}} {
			res := r.run(args...)
			t.Logf("%s", res)
			if res.code != 0 && (res.code != 1 || !strings.Contains(res.stderr, "/dev/mapper/control")) {
				t.Errorf("want success or exit 1 naming /dev/mapper/control, got %s", res)
			}
			os.Remove("/dev/mapper/control") // start each command without it
		}
		restore()
		if d := diffDigest(before, r.dmState(t)); d != "" {
			t.Errorf("state changed:\n%s", d)
		}
		r.assertConsistent(t)
	})
}

// TestReliabilityBackingFileDeletedUnderLivePool deletes the data and the
// metadata file of a live pool: commands keep working or fail cleanly
// while the loop devices hold the files, and once the pool is down,
// bringing it up fails naming the missing file.
func TestReliabilityBackingFileDeletedUnderLivePool(t *testing.T) {
	files := []string{"data", "metadata"}
	switch {
	case full:
	case udevMode:
		t.Skip("runs in the boot without udev (loop and file handling do not depend on udev)")
	default:
		files = files[:1] // the metadata file is handled the same way
	}
	for _, file := range files {
		t.Run("the "+file+" file", func(t *testing.T) {
			r := newPoolRig(t, "")
			r.must("create", "a")
			r.writeData(t, "a", "a\n")
			path := filepath.Join(r.root, "devicemapper", file)
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			for _, args := range [][]string{{"list"}, {"create", "b"}, {"pool", "status"}, {"check"}} {
				res := r.run(args...)
				t.Logf("with %s deleted under the live pool: %s", file, res)
				if res.code != 0 && (res.code != 1 || !strings.HasPrefix(res.stderr, "thinctl: ")) {
					t.Errorf("want success or a clean failure, got %s", res)
				}
			}
			if res := r.run("pool", "down"); res.code != 0 {
				t.Errorf("pool down with the %s file deleted: %s", file, res)
			}
			if left := dmNames(rootPrefix(r.key)); len(left) > 0 {
				t.Errorf("after pool down, device-mapper still has %v", left)
			}
			res := r.run("pool", "up")
			if res.code != 1 || !strings.Contains(res.stderr, path) {
				t.Errorf("pool up without its %s file: want exit 1 naming %s, got %s", file, path, res)
			}
			if _, err := os.Stat(path); err == nil {
				t.Errorf("pool up recreated %s: an empty file would pass for the lost one", path)
			}
		})
	}
}

// TestReliabilityKernelWithoutThinPool unloads dm-thin-pool (possible only
// when no pool in the guest uses it), checks that devicemapper is refused
// with a hint and auto picks overlay2, and loads the module again.
func TestReliabilityKernelWithoutThinPool(t *testing.T) {
	requireVM(t)
	findThinctl(t)
	kos, _ := filepath.Glob("/lib/modules/*dm-thin-pool.ko")
	if len(kos) != 1 {
		t.Skipf("no dm-thin-pool module file to load back (%v); not unloading it", kos)
	}
	if out, err := exec.Command("rmmod", "dm_thin_pool").CombinedOutput(); err != nil {
		t.Skipf("cannot unload dm_thin_pool (a pool uses it?): %v %s", err, out)
	}
	defer func() {
		if out, err := exec.Command("insmod", kos[0]).CombinedOutput(); err != nil {
			t.Errorf("insmod %s: %v %s", kos[0], err, out)
		}
	}()
	r := newRig(t, filepath.Join(t.TempDir(), "root"))
	res := r.run("--driver", "devicemapper", "pool", "init", "--data-size", "1G", "--metadata-size", "32M", "--base-size", "64M")
	if res.code != 1 || !strings.Contains(res.stderr, "thin") {
		t.Errorf("pool init --driver devicemapper without dm-thin-pool: want exit 1 explaining it, got %s", res)
	}
	if _, err := os.Stat(filepath.Join(r.root, "devicemapper")); err == nil {
		t.Errorf("a refused pool init left files behind: %v", treeDigest(t, r.root, 1<<20))
	}
	res = r.run("pool", "init")
	if res.code != 0 || !strings.Contains(res.stdout, "overlay2") {
		t.Errorf("pool init --driver auto without dm-thin-pool: want overlay2, got %s", res)
	}
	if left := dmNames("thinctl-"); len(left) > 0 {
		t.Errorf("device-mapper devices left: %v", left)
	}
	r.run("pool", "destroy", "--force")
}

//go:build vm

package reliability

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/thinctl/thinctl/internal/testenv"
)

// requireVM skips unless the kernel has device-mapper and the oracles
// are installed.
func requireVM(t *testing.T) {
	t.Helper()
	testenv.RequireDeviceMapper(t)
	for _, tool := range []string{"dmsetup", "thin_check", "thin_dump"} {
		testenv.RequireTool(t, tool)
	}
}

// smallPool is the pool every test makes: small enough that mkfs and
// thin_check are quick under emulation.
var smallPool = []string{"pool", "init", "--data-size", "1G", "--metadata-size", "32M", "--base-size", "64M"}

// newPoolRig makes a pool in a fresh root (or dir, when given) and takes
// it down with its devices when the test ends.
func newPoolRig(t *testing.T, dir string, initArgs ...string) *rig {
	t.Helper()
	requireVM(t)
	if dir == "" {
		dir = t.TempDir()
	}
	r := newRig(t, dir)
	if len(initArgs) == 0 {
		initArgs = smallPool
	}
	r.must(append([]string{"--driver", "devicemapper"}, initArgs...)...)
	t.Cleanup(func() { r.t = t; r.destroy() })
	cfg, err := readPoolJSON(dir)
	if err != nil {
		t.Fatal(err)
	}
	r.key = cfg.Key
	return r
}

// destroy removes the pool and everything of the root from the kernel,
// whatever state a test left (used in cleanups).
func (r *rig) destroy() {
	if res := r.run("pool", "destroy", "--force"); res.code == 0 {
		return
	}
	key := r.key
	if cfg, err := readPoolJSON(r.root); err == nil {
		key = cfg.Key
	}
	if key == "" {
		return
	}
	resumeAll(key)
	removeAllDM(key)
	exec.Command("umount", "-l", filepath.Join(r.root, "mnt")).Run()
	detachLoopsUnder(filepath.Join(r.root, "devicemapper"))
}

// poolJSON is the part of <root>/devicemapper/pool.json the oracles read.
type poolJSON struct {
	PoolName     string `json:"pool_name"`
	Key          string `json:"key"`
	BaseDeviceID uint32 `json:"base_device_id"`
	MetadataFile string `json:"metadata_file"`
	DataFile     string `json:"data_file"`
}

func readPoolJSON(root string) (poolJSON, error) {
	var p poolJSON
	b, err := os.ReadFile(filepath.Join(root, "devicemapper", "pool.json"))
	if err != nil {
		return p, err
	}
	return p, json.Unmarshal(b, &p)
}

// registryRecord is the part of a device record the oracles read.
type registryRecord = testenv.RegistryRecord

// readRegistry reads every device record straight from the registry's
// files (testenv.ReadRegistry decodes them as docs/registry.md says).
func readRegistry(t *testing.T, root string) []registryRecord {
	t.Helper()
	recs, err := testenv.ReadRegistry(root)
	if err != nil {
		t.Fatalf("read the registry of %s: %v", root, err)
	}
	return recs
}

// dmNames lists device-mapper devices whose names start with prefix.
func dmNames(prefix string) []string {
	out, _ := exec.Command("dmsetup", "ls").Output()
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && strings.HasPrefix(f[0], prefix) {
			names = append(names, f[0])
		}
	}
	sort.Strings(names)
	return names
}

func rootPrefix(key string) string { return "thinctl-" + key + "-" }

// suspendedDevices lists the root's devices that are suspended: no
// thinctl command may leave one behind (I/O to it hangs).
func suspendedDevices(key string) []string {
	var out []string
	for _, n := range dmNames(rootPrefix(key)) {
		b, _ := exec.Command("dmsetup", "info", "-c", "--noheadings", "-o", "attr", n).Output()
		if strings.Contains(string(b), "s") {
			out = append(out, n)
		}
	}
	return out
}

// resumeAll resumes suspended devices of the root (test cleanup only).
func resumeAll(key string) {
	for _, n := range suspendedDevices(key) {
		exec.Command("dmsetup", "resume", n).Run()
	}
}

// removeAllDM removes the root's thin devices, then its pool.
func removeAllDM(key string) {
	names := dmNames(rootPrefix(key))
	for _, n := range names {
		if !strings.HasSuffix(n, "-pool") {
			exec.Command("dmsetup", "remove", "-f", n).Run()
		}
	}
	for _, n := range names {
		if strings.HasSuffix(n, "-pool") {
			exec.Command("dmsetup", "remove", n).Run()
		}
	}
}

// detachLoopsUnder detaches loop devices whose backing file is under dir.
func detachLoopsUnder(dir string) {
	ms, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	for _, m := range ms {
		b, _ := os.ReadFile(m)
		if strings.HasPrefix(strings.TrimSpace(string(b)), dir) {
			dev := "/dev/" + filepath.Base(filepath.Dir(filepath.Dir(m)))
			exec.Command("losetup", "-d", dev).Run()
		}
	}
}

var thinDumpDevice = regexp.MustCompile(`<device dev_id="(\d+)"`)

// thinDumpIDs runs thin_check and thin_dump on the metadata file of a pool
// that is down and returns the thin device ids in it.
func thinDumpIDs(t *testing.T, metaFile string) []uint32 {
	t.Helper()
	if out, err := exec.Command("thin_check", metaFile).CombinedOutput(); err != nil {
		t.Fatalf("thin_check %s: %v\n%s", metaFile, err, out)
	}
	out, err := exec.Command("thin_dump", metaFile).Output()
	if err != nil {
		t.Fatalf("thin_dump %s: %v", metaFile, err)
	}
	var ids []uint32
	for _, m := range thinDumpDevice.FindAllStringSubmatch(string(out), -1) {
		n, _ := strconv.ParseUint(m[1], 10, 32)
		ids = append(ids, uint32(n))
	}
	return ids
}

// assertPoolMatchesRegistry takes the pool down, and asserts that nothing
// of the root is left in the kernel, thin_check passes and the thin ids in
// the metadata are exactly the base device and the registry's records
// (no leak, no loss, no duplicate). The pool is brought up again.
func (r *rig) assertPoolMatchesRegistry(t *testing.T) {
	t.Helper()
	r.t = t
	r.must("pool", "down")
	cfg, err := readPoolJSON(r.root)
	if err != nil {
		t.Fatal(err)
	}
	if left := dmNames(rootPrefix(cfg.Key)); len(left) > 0 {
		t.Errorf("after pool down, device-mapper still has %v", left)
	}
	ids := thinDumpIDs(t, filepath.Join(r.root, "devicemapper", cfg.MetadataFile))
	want := map[uint32]string{cfg.BaseDeviceID: "(base)"}
	for _, rec := range readRegistry(t, r.root) {
		if other, dup := want[rec.DeviceID]; dup {
			t.Errorf("thin id %d is used by both %s and %s in the registry", rec.DeviceID, other, rec.ID)
		}
		want[rec.DeviceID] = rec.ID
	}
	seen := map[uint32]bool{}
	for _, id := range ids {
		if want[id] == "" {
			t.Errorf("leaked thin id %d: in the pool metadata, in no registry record", id)
		}
		seen[id] = true
	}
	for id, name := range want {
		if !seen[id] {
			t.Errorf("lost device %s: its thin id %d is not in the pool metadata", name, id)
		}
	}
	r.must("pool", "up")
}

// assertConsistent runs `thinctl check` and fails on any problem.
func (r *rig) assertConsistent(t *testing.T) {
	t.Helper()
	r.t = t
	rep, res := r.check()
	if !rep.Consistent || res.code != 0 {
		t.Errorf("check is not consistent: %+v\n%s", rep.Problems, res)
	}
}

// writeData mounts id, writes content to its file "data", syncs and unmounts.
func (r *rig) writeData(t *testing.T, id, content string) {
	t.Helper()
	r.t = t
	mp := strings.TrimSpace(r.must("mount", id))
	if err := writeSynced(filepath.Join(mp, "data"), content); err != nil {
		t.Fatalf("write %s: %v", id, err)
	}
	r.must("unmount", id)
}

// writeSynced replaces path with content and fsyncs it.
func writeSynced(path, content string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteString(content)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// readData mounts id and returns its file "data" ("" when absent); it
// unmounts the device again unless it was mounted before.
func (r *rig) readData(t *testing.T, id string, wasMounted bool) string {
	t.Helper()
	r.t = t
	mp := strings.TrimSpace(r.must("mount", id))
	b, err := readWithTimeout(filepath.Join(mp, "data"), 60*time.Second)
	if err != nil && !os.IsNotExist(err) {
		t.Fatalf("read %s: %v", id, err)
	}
	if !wasMounted {
		r.must("unmount", id)
	}
	return string(b)
}

// readWithTimeout reads a file in a goroutine so that a hung device (a
// suspended table) fails the test instead of hanging the suite.
func readWithTimeout(path string, d time.Duration) ([]byte, error) {
	type res struct {
		b   []byte
		err error
	}
	ch := make(chan res, 1)
	go func() { b, err := os.ReadFile(path); ch <- res{b, err} }()
	select {
	case r := <-ch:
		return r.b, r.err
	case <-time.After(d):
		return nil, &os.PathError{Op: "read", Path: path, Err: os.ErrDeadlineExceeded}
	}
}

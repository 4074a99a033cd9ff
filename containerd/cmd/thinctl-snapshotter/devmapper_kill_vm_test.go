//go:build vm

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/thinctl/thinctl/internal/testenv"
)

// TestContainerdDevmapperKilledMidImport does to containerd's built-in
// devmapper snapshotter what TestRealContainerdThroughTheSnapshotter does
// to thinctl-snapshotter: SIGKILL in the middle of a five-layer
// `ctr images import`, restart, import again, remove the image with
// containerd's garbage collection. The devmapper snapshotter runs inside
// containerd, so containerd is the process killed. It reports what
// happened (what ctr and containerd printed, whether the second import
// completed, which thin devices are left in the pool and in what state
// devmapper's metadata keeps them); it asserts nothing about devmapper.
// It runs only when named with -test.run.
func TestContainerdDevmapperKilledMidImport(t *testing.T) {
	if f := flag.Lookup("test.run"); f == nil || !strings.Contains(f.Value.String(), "DevmapperKilledMidImport") {
		t.Skip("a report on containerd's devmapper snapshotter: run it by name (--run TestContainerdDevmapperKilledMidImport)")
	}
	testenv.RequireDeviceMapper(t)
	containerd := testenv.RequireTool(t, "containerd")
	testenv.RequireTool(t, "ctr")
	testenv.RequireTool(t, "blkdiscard")
	thinDump := testenv.RequireTool(t, "thin_dump")

	pool, metaDev := devmapperPool(t, 4<<30, 64<<20)
	r := newRig(t)
	r.startSnapshotter()
	dmRoot := filepath.Join(t.TempDir(), "devmapper")
	cfg := devmapperConfig(dmRoot, pool)
	// containerd's devmapper snapshotter runs dmsetup and blkdiscard: log
	// each call with the guest's uptime (the kernel log's clock).
	calls := filepath.Join(t.TempDir(), "calls.log")
	r.ctrdEnv = []string{"PATH=" + logCalls(t, calls, "dmsetup", "blkdiscard") + ":" + os.Getenv("PATH")}
	r.startContainerd(containerd, cfg)

	work := t.TempDir()
	many := filepath.Join(work, "many.tar")
	layers := manyLayerImage(5, 2<<20)
	top := writeImageArchive(t, many, "thinctl.test/many:latest", layers)
	sn := []string{"snapshots", "--snapshotter", "devmapper"}

	count := func() int {
		conn, err := grpc.NewClient("unix://"+r.ctrdSock, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return 0
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), "default"), 5*time.Second)
		defer cancel()
		st, err := snapshotsapi.NewSnapshotsClient(conn).List(ctx, &snapshotsapi.ListSnapshotsRequest{Snapshotter: "devmapper"})
		if err != nil {
			return 0
		}
		n := 0
		for {
			m, err := st.Recv()
			if err != nil {
				return n
			}
			n += len(m.Info)
		}
	}

	imp := exec.Command("ctr", "--address", r.ctrdSock, "--namespace", "default", "images", "import", "--snapshotter", "devmapper", many)
	var impOut bytes.Buffer
	imp.Stdout, imp.Stderr = &impOut, &impOut
	if err := imp.Start(); err != nil {
		t.Fatal(err)
	}
	for t0 := time.Now(); count() < 2 && time.Since(t0) < 120*time.Second; time.Sleep(50 * time.Millisecond) {
	}
	killedAt := count()
	r.containerd.Process.Kill()
	r.containerd.Wait()
	ierr := imp.Wait()
	t.Logf("REPORT SIGKILL of containerd with %d devmapper snapshots made (of 5 layers); the import: %v\n%s", killedAt, ierr, impOut.String())
	t.Logf("REPORT active devmapper thin devices after the kill: %v", devmapperThins(pool))
	t.Logf("REPORT devmapper's device states right after the kill (%s.db):\n%s", pool, devmapperMetadata(filepath.Join(dmRoot, pool+".db")))

	t0 := time.Now()
	r.startContainerd(containerd, cfg)
	t.Logf("REPORT containerd answered again %v after its restart", time.Since(t0).Round(time.Millisecond))
	logDevmapper := func(what string) {
		b, _ := os.ReadFile(r.ctrdLog)
		var keep []string
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "devmapper") && (strings.Contains(l, "level=warn") || strings.Contains(l, "level=error")) {
				keep = append(keep, l)
			}
		}
		t.Logf("REPORT containerd's devmapper warnings and errors %s (%d lines):\n%s", what, len(keep), strings.Join(keep, "\n"))
	}
	logDevmapper("after the restart")
	out, err := r.ctrErr(append(sn, "ls")...)
	t.Logf("REPORT ctr snapshots ls after the restart (%v):\n%s", err, out)
	out, err = r.ctrErr("images", "ls", "-q")
	t.Logf("REPORT ctr images ls -q after the restart (%v):\n%s", err, out)

	t1 := time.Now()
	out, err = r.ctrErr("images", "import", "--snapshotter", "devmapper", many)
	t.Logf("REPORT the second import (%v, %v):\n%s", err, time.Since(t1).Round(time.Millisecond), out)
	if err != nil {
		out, err = r.ctrErr("images", "import", "--snapshotter", "devmapper", many)
		t.Logf("REPORT a third import (%v):\n%s", err, out)
	}
	logDevmapper("after the second import")
	out, err = r.ctrErr(append(sn, "info", top)...)
	t.Logf("REPORT the image's top snapshot %s after the re-import (%v):\n%s", top, err, out)
	if err == nil {
		// Read the layers back through a view, as the thinctl test does.
		mnt := mkdir(t, filepath.Join(work, "mnt"))
		vout, verr := r.ctrErr(append(sn, "view", "--target", mnt, "check-view", top)...)
		f := strings.Fields(vout)
		if verr == nil && len(f) >= 4 && f[0] == "mount" {
			if merr := syscall.Mount(f[3], mnt, "ext4", syscall.MS_RDONLY, ""); merr == nil {
				good := 0
				for i := range layers {
					if b, err := os.ReadFile(filepath.Join(mnt, fmt.Sprintf("layers/%02d", i))); err == nil && bytes.Equal(b, layers[i][1].data) {
						good++
					}
				}
				t.Logf("REPORT %d of %d layer files read back byte for byte from a view of the re-imported image", good, len(layers))
				syscall.Unmount(mnt, 0)
			} else {
				t.Logf("REPORT mount of the view %s: %v", f[3], merr)
			}
		} else {
			t.Logf("REPORT ctr snapshots view: %v\n%s", verr, vout)
		}
		r.ctrErr(append(sn, "rm", "check-view")...)
	}

	out, err = r.ctrErr("images", "rm", "--sync", "thinctl.test/many:latest")
	t.Logf("REPORT ctr images rm --sync (%v): %s", err, strings.TrimSpace(out))
	time.Sleep(2 * time.Second)
	out, err = r.ctrErr(append(sn, "ls")...)
	t.Logf("REPORT ctr snapshots ls after images rm (%v):\n%s", err, out)
	t.Logf("REPORT active devmapper thin devices after images rm: %v", devmapperThins(pool))
	// ctr holds a lease while it imports and deletes it when it ends; the
	// killed containerd never heard the delete, so the lease (24 hours)
	// keeps what the first import made. Remove every lease, then collect.
	out, err = r.ctrErr("leases", "ls")
	t.Logf("REPORT ctr leases ls (%v):\n%s", err, out)
	for _, line := range strings.Split(out, "\n")[1:] {
		if f := strings.Fields(line); len(f) > 0 {
			o, err := r.ctrErr("leases", "rm", "--sync", f[0])
			t.Logf("REPORT ctr leases rm --sync %s (%v): %s", f[0], err, strings.TrimSpace(o))
		}
	}
	time.Sleep(2 * time.Second)
	out, err = r.ctrErr(append(sn, "ls")...)
	t.Logf("REPORT ctr snapshots ls after the leases went (%v):\n%s", err, out)
	t.Logf("REPORT active devmapper thin devices after the leases went: %v", devmapperThins(pool))
	logDevmapper("at the end")
	if b, err := os.ReadFile(calls); err == nil {
		t.Logf("REPORT dmsetup and blkdiscard as containerd ran them ([uptime]), with the kernel's buffer I/O errors:\n%s", mergeKernelErrors(string(b)))
	}

	// What containerd's devmapper metadata keeps, read with its own code
	// once containerd has stopped (bolt takes an exclusive lock).
	r.containerd.Process.Signal(syscall.SIGTERM)
	r.containerd.Wait()
	t.Logf("REPORT devmapper's device states at the end (%s.db):\n%s", pool, devmapperMetadata(filepath.Join(dmRoot, pool+".db")))
	t.Logf("REPORT devmapper's snapshot records at the end (metadata.db):\n%s", devmapperMetadata(filepath.Join(dmRoot, "metadata.db")))
	// The thin devices the pool itself holds (its metadata, through a
	// held metadata root: the pool is live).
	if out, err := exec.Command("dmsetup", "message", pool, "0", "reserve_metadata_snap").CombinedOutput(); err != nil {
		t.Logf("REPORT reserve_metadata_snap: %v %s", err, out)
	} else {
		dump, err := exec.Command(thinDump, "-m", metaDev).CombinedOutput()
		exec.Command("dmsetup", "message", pool, "0", "release_metadata_snap").Run()
		ids := regexp.MustCompile(`<device dev_id="(\d+)" mapped_blocks="(\d+)"`).FindAllStringSubmatch(string(dump), -1)
		var ds []string
		for _, m := range ids {
			ds = append(ds, "id "+m[1]+" ("+m[2]+" blocks)")
		}
		t.Logf("REPORT thin devices in devmapper's pool at the end (thin_dump, %v): %d: %s", err, len(ids), strings.Join(ds, ", "))
	}
}

// devmapperStates names the device states containerd's devmapper
// snapshotter stores (an int in its device records, 1.6 to 2.x).
var devmapperStates = []string{"Unknown", "Creating", "Created", "Activating", "Activated", "Suspending", "Suspended",
	"Resuming", "Resumed", "Deactivating", "Deactivated", "Removing", "Removed", "Faulty"}

// devmapperMetadata describes a bolt database of containerd's devmapper
// snapshotter: every bucket with its key count, and in its pool database
// (<root_path>/<pool_name>.db) the device records (bucket "devices":
// device name -> JSON with device_id, state, error) and thin id marks
// (bucket "device_ids": id -> 0 free, 1 taken, 2 faulty). The snapshot
// records (name, kind, parent) are in <root_path>/metadata.db.
func devmapperMetadata(path string) string {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		return fmt.Sprintf("open %s: %v", path, err)
	}
	defer db.Close()
	var b strings.Builder
	// Walk every bucket: where containerd keeps them varies (1.6 nests
	// them under "v1").
	var walk func(path string, bk *bolt.Bucket)
	walk = func(path string, bk *bolt.Bucket) {
		n, faulty := 0, 0
		var ids []string
		bk.ForEach(func(k, v []byte) error {
			if v == nil {
				walk(path+"/"+string(k), bk.Bucket(k))
				return nil
			}
			n++
			switch {
			case strings.HasSuffix(path, "devices"):
				var d struct {
					DeviceID   uint32 `json:"device_id"`
					ParentName string `json:"parent_name"`
					State      int    `json:"state"`
					Error      string `json:"error"`
				}
				json.Unmarshal(v, &d)
				st := fmt.Sprint(d.State)
				if d.State >= 0 && d.State < len(devmapperStates) {
					st = devmapperStates[d.State]
				}
				fmt.Fprintf(&b, "%s: device %s: id %d, parent %q, state %s, error %q\n", path, k, d.DeviceID, d.ParentName, st, d.Error)
			case strings.HasSuffix(path, "device_ids") && len(v) == 1 && v[0] != 0:
				ids = append(ids, fmt.Sprintf("%s=%d", k, v[0]))
				if v[0] == 2 {
					faulty++
				}
			}
			return nil
		})
		fmt.Fprintf(&b, "%s: %d keys", path, n)
		if strings.HasSuffix(path, "device_ids") {
			fmt.Fprintf(&b, "; thin ids taken (1) or faulty (2): %s; %d faulty", strings.Join(ids, " "), faulty)
		}
		b.WriteString("\n")
	}
	db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, bk *bolt.Bucket) error {
			walk(string(name), bk)
			return nil
		})
	})
	return b.String()
}

// logCalls makes a directory of wrappers that append "[uptime] prog args"
// to file and run the real programs; put it first on a PATH.
func logCalls(t *testing.T, file string, progs ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, p := range progs {
		real, err := exec.LookPath(p)
		if err != nil {
			t.Fatal(err)
		}
		script := fmt.Sprintf("#!/bin/sh\nread up _ </proc/uptime\necho \"[$up] %s $*\" >>%s\nexec %s \"$@\"\n", p, file, real)
		if err := os.WriteFile(filepath.Join(dir, p), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// mergeKernelErrors interleaves the kernel's buffer I/O error lines
// (dmesg) with the call log, by uptime.
func mergeKernelErrors(calls string) string {
	type line struct {
		at   float64
		text string
	}
	var ls []line
	add := func(text string) {
		var at float64
		if i := strings.Index(text, "]"); strings.HasPrefix(text, "[") && i > 0 {
			fmt.Sscanf(strings.TrimSpace(text[1:i]), "%f", &at)
		}
		ls = append(ls, line{at, text})
	}
	for _, l := range strings.Split(strings.TrimSpace(calls), "\n") {
		add(l)
	}
	if len(ls) == 0 {
		return ""
	}
	start := ls[0].at // earlier kernel lines belong to other tests
	if out, err := exec.Command("dmesg").Output(); err == nil {
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, "Buffer I/O error") {
				add(l)
				if ls[len(ls)-1].at < start {
					ls = ls[:len(ls)-1]
				}
			}
		}
	}
	sort.SliceStable(ls, func(i, j int) bool { return ls[i].at < ls[j].at })
	var b strings.Builder
	for _, l := range ls {
		b.WriteString(l.text + "\n")
	}
	return b.String()
}

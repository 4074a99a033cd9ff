package thinpool

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/fs"
)

func newTestRegistry(t *testing.T) registry {
	t.Helper()
	dir := filepath.Join(t.TempDir(), stateDirName)
	if err := os.MkdirAll(filepath.Join(dir, devicesDirName), 0o700); err != nil {
		t.Fatal(err)
	}
	return registry{dir: dir}
}

func sampleDevice(id string, devID uint32) deviceRecord {
	return deviceRecord{Version: registryVersion, ID: id, DeviceID: devID, Size: 256 * MiB,
		Initialized: true, Parent: "base-layer", Created: time.Date(2026, 11, 22, 7, 0, 0, 0, time.UTC)}
}

func TestRegistryRoundTrip(t *testing.T) {
	r := newTestRegistry(t)
	t.Run("a device record reads back equal", func(t *testing.T) {
		d := sampleDevice("layer-1", 42)
		d.GrowPending = true
		if err := r.saveDevice(d); err != nil {
			t.Fatal(err)
		}
		got, err := r.loadDevice("layer-1")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, d) {
			t.Fatalf("read back %+v, want %+v", got, d)
		}
	})
	t.Run("pool.json reads back equal", func(t *testing.T) {
		p := poolRecord{Version: registryVersion, PoolName: "thinctl-8:1-12-pool", Key: "8:1-12", DataFile: "data",
			MetadataFile: "metadata", DataSize: GiB, MetadataSize: 64 * MiB, BlockSize: 64 * KiB, MinFreeSpace: 10,
			Filesystem: fs.XFS, MkfsArgs: []string{"-m", "crc=1"}, MountOptions: []string{"noatime"}, BaseDeviceID: 1,
			BaseSize: 256 * MiB, BaseUUID: "0b5e2c1e-3b0a-4b8e-9e1e-1f2a3b4c5d6e", NextDeviceID: 9,
			Created: time.Date(2026, 11, 22, 7, 0, 0, 0, time.UTC)}
		if err := r.savePool(p); err != nil {
			t.Fatal(err)
		}
		got, err := r.loadPool()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, p) {
			t.Fatalf("read back %+v, want %+v", got, p)
		}
	})
	t.Run("a transaction reads back equal and clears", func(t *testing.T) {
		tx := txRecord{Version: registryVersion, Op: opCreateSnap, DeviceID: 43, OriginDeviceID: 1,
			ID: "layer-2", Started: time.Date(2026, 11, 22, 7, 0, 0, 0, time.UTC)}
		if err := r.saveTx(tx); err != nil {
			t.Fatal(err)
		}
		got, err := r.loadTx()
		if err != nil || got == nil || !reflect.DeepEqual(*got, tx) {
			t.Fatalf("loadTx = %+v, %v; want %+v", got, err, tx)
		}
		if err := r.clearTx(); err != nil {
			t.Fatal(err)
		}
		if got, err := r.loadTx(); got != nil || err != nil {
			t.Fatalf("after clearTx loadTx = %+v, %v; want nil, nil", got, err)
		}
	})
	t.Run("listing returns every record sorted and skips temporary files", func(t *testing.T) {
		for i, id := range []string{"zeta", "alpha", "mid"} {
			if err := r.saveDevice(sampleDevice(id, uint32(100+i))); err != nil {
				t.Fatal(err)
			}
		}
		os.WriteFile(filepath.Join(r.devicesDir(), ".zeta.json.tmp-123"), []byte("{garbage"), 0o600)
		recs, err := r.listDevices()
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, d := range recs {
			ids = append(ids, d.ID)
		}
		if strings.Join(ids, ",") != "alpha,layer-1,mid,zeta" {
			t.Fatalf("listed %v", ids)
		}
	})
	t.Run("removing a record makes it not found", func(t *testing.T) {
		if err := r.removeDevice("mid"); err != nil {
			t.Fatal(err)
		}
		if _, err := r.loadDevice("mid"); !errors.Is(err, ErrDeviceNotFound) {
			t.Fatalf("loadDevice after remove = %v, want ErrDeviceNotFound", err)
		}
	})
	t.Run("a missing pool.json is ErrNotInitialized", func(t *testing.T) {
		if _, err := newTestRegistry(t).loadPool(); !errors.Is(err, ErrNotInitialized) {
			t.Fatalf("loadPool = %v, want ErrNotInitialized", err)
		}
	})
}

func TestAtomicWrites(t *testing.T) {
	r := newTestRegistry(t)
	d := sampleDevice("a", 1)
	if err := r.saveDevice(d); err != nil {
		t.Fatal(err)
	}
	d.Size = 2 * GiB
	if err := r.saveDevice(d); err != nil {
		t.Fatal(err)
	}
	t.Run("files are 0600 and directories stay as made", func(t *testing.T) {
		st, err := os.Stat(r.devicePath("a"))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Fatalf("record mode %o, want 0600", st.Mode().Perm())
		}
	})
	t.Run("an overwrite leaves no temporary file behind", func(t *testing.T) {
		ents, _ := os.ReadDir(r.devicesDir())
		if len(ents) != 1 || ents[0].Name() != "a.json" {
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			t.Fatalf("devices dir holds %v, want [a.json]", names)
		}
	})
	t.Run("the overwrite is what reads back", func(t *testing.T) {
		got, err := r.loadDevice("a")
		if err != nil || got.Size != 2*GiB {
			t.Fatalf("loadDevice = %+v, %v", got, err)
		}
	})
	t.Run("a write into a missing directory fails and creates nothing", func(t *testing.T) {
		bad := registry{dir: filepath.Join(t.TempDir(), "nope")}
		if err := bad.saveDevice(d); err == nil {
			t.Fatal("saveDevice into a missing directory succeeded")
		}
		if _, err := os.Stat(bad.dir); !os.IsNotExist(err) {
			t.Fatalf("a failed write created %s", bad.dir)
		}
	})
}

func TestCorruptRegistryIsRefused(t *testing.T) {
	cases := []struct {
		name    string
		content string
	}{
		{"an empty file", ""},
		{"a truncated document", `{"version":1,"id":"x","device_id":3,"si`},
		{"binary garbage", "\x00\x01\x02\xff"},
		{"a JSON array", `[1,2,3]`},
		{"a record without a version", `{"id":"x","device_id":3}`},
		{"a record from a newer thinctl", `{"version":99,"id":"x","device_id":3}`},
		{"a record naming another id", `{"version":1,"id":"y","device_id":3}`},
		{"a record with device id 0", `{"version":1,"id":"x","device_id":0}`},
		{"a record with a device id beyond 24 bits", `{"version":1,"id":"x","device_id":16777216}`},
		{"two documents in one file", `{"version":1,"id":"x","device_id":3} {"version":1}`},
	}
	for _, c := range cases {
		t.Run(c.name+" is ErrRegistryCorrupt naming the file and left untouched", func(t *testing.T) {
			r := newTestRegistry(t)
			path := r.devicePath("x")
			if err := os.WriteFile(path, []byte(c.content), 0o600); err != nil {
				t.Fatal(err)
			}
			before, _ := os.Stat(path)
			_, err := r.loadDevice("x")
			if !errors.Is(err, ErrRegistryCorrupt) {
				t.Fatalf("loadDevice = %v, want ErrRegistryCorrupt", err)
			}
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("error %q does not name %s", err, path)
			}
			if _, err := r.listDevices(); !errors.Is(err, ErrRegistryCorrupt) {
				t.Fatalf("listDevices = %v, want ErrRegistryCorrupt", err)
			}
			after, _ := os.Stat(path)
			b, _ := os.ReadFile(path)
			if string(b) != c.content || !after.ModTime().Equal(before.ModTime()) {
				t.Fatal("the corrupt file was modified")
			}
		})
	}
	t.Run("a garbage pool.json is ErrRegistryCorrupt, not ErrNotInitialized", func(t *testing.T) {
		r := newTestRegistry(t)
		os.WriteFile(r.poolPath(), []byte("{\"version\":1,"), 0o600)
		if _, err := r.loadPool(); !errors.Is(err, ErrRegistryCorrupt) || errors.Is(err, ErrNotInitialized) {
			t.Fatalf("loadPool = %v, want ErrRegistryCorrupt", err)
		}
	})
	t.Run("a transaction with an unknown op is ErrRegistryCorrupt", func(t *testing.T) {
		r := newTestRegistry(t)
		os.WriteFile(r.txPath(), []byte(`{"version":1,"op":"format_disk","pool_transaction_id":2,"device_id":3}`), 0o600)
		if _, err := r.loadTx(); !errors.Is(err, ErrRegistryCorrupt) {
			t.Fatalf("loadTx = %v, want ErrRegistryCorrupt", err)
		}
	})
}

func TestListDevicesReadsManyRecordsInIDOrderAndNamesTheFirstCorruptOne(t *testing.T) {
	r := newTestRegistry(t)
	const n = 500
	for i := n; i >= 1; i-- {
		if err := r.saveDevice(sampleDevice(fmt.Sprintf("layer-%d", i), uint32(i))); err != nil {
			t.Fatal(err)
		}
	}
	recs, err := r.listDevices()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != n {
		t.Fatalf("listDevices returned %d records, want %d", len(recs), n)
	}
	for i := 1; i < len(recs); i++ {
		if recs[i-1].ID >= recs[i].ID {
			t.Fatalf("records out of order: %q before %q", recs[i-1].ID, recs[i].ID)
		}
	}
	for _, id := range []string{"layer-77", "layer-400", "layer-123"} {
		if err := os.WriteFile(r.devicePath(id), []byte("{"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for range 5 { // the same answer whatever the goroutines' timing
		_, err := r.listDevices()
		if !errors.Is(err, ErrRegistryCorrupt) || !strings.Contains(err.Error(), "layer-123.json") {
			t.Fatalf("listDevices = %v, want ErrRegistryCorrupt naming layer-123.json (the first in id order)", err)
		}
	}
}

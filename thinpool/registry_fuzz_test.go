package thinpool

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pkg/errors"
)

// FuzzRegistryDecode writes arbitrary bytes as pool.json, a device record
// and transaction.json and loads them: no panic; every refusal is
// ErrRegistryCorrupt naming the file; what is accepted passes validation;
// the files are never modified.
func FuzzRegistryDecode(f *testing.F) {
	enc := func(v any) []byte { b, _ := json.Marshal(v); return b }
	f.Add(enc(poolRecord{Version: registryVersion, PoolName: "thinctl-8:1-2-pool", Key: "8:1-2", BlockSize: 65536, BaseDeviceID: 1}))
	f.Add(enc(deviceRecord{Version: registryVersion, ID: "x", DeviceID: 2, Size: 1 << 30}))
	f.Add(enc(txRecord{Version: registryVersion, Op: opCreateSnap, DeviceID: 2, OriginDeviceID: 1, ID: "x"}))
	f.Add(enc(txRecord{Version: registryVersion, Op: opDelete, DeviceID: 4}))
	for _, s := range []string{"", " ", "{", "null", "[]", `{"version":2}`, `{"version":1,"id":"x","device_id":16777216}`,
		`{"version":1}{"version":1}`, "\x00\xff", `{"version":1,"op":"create_snap","device_id":1,"pool_transaction_id":1}`} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, devicesDirName), 0o700); err != nil {
		f.Fatal(err)
	}
	r := registry{dir: dir}
	f.Fuzz(func(t *testing.T, data []byte) {
		files := []string{r.poolPath(), r.devicePath("x"), r.txPath()}
		for _, p := range files {
			if err := os.WriteFile(p, data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		refused := func(path string, err error) {
			t.Helper()
			if !errors.Is(err, ErrRegistryCorrupt) || !strings.Contains(err.Error(), path) {
				t.Fatalf("%s: error %v is not ErrRegistryCorrupt naming the file", path, err)
			}
		}
		if p, err := r.loadPool(); err != nil {
			refused(r.poolPath(), err)
		} else if p.Version != registryVersion || p.PoolName == "" || p.BaseDeviceID == 0 || p.BaseDeviceID > maxDeviceID {
			t.Fatalf("loadPool accepted %+v", p)
		}
		if d, err := r.loadDevice("x"); err != nil {
			refused(r.devicePath("x"), err)
		} else if d.ID != "x" || d.DeviceID == 0 || d.DeviceID > maxDeviceID {
			t.Fatalf("loadDevice accepted %+v", d)
		}
		if ds, err := r.listDevices(); err != nil {
			refused(r.devicePath("x"), err)
		} else if len(ds) != 1 {
			t.Fatalf("listDevices returned %d records for one valid file", len(ds))
		}
		if tx, err := r.loadTx(); err != nil {
			refused(r.txPath(), err)
		} else if tx == nil || tx.validate() != nil {
			t.Fatalf("loadTx accepted %+v", tx)
		}
		for _, p := range files {
			if got, _ := os.ReadFile(p); !bytes.Equal(got, data) {
				t.Fatalf("%s was modified by a read", p)
			}
		}
	})
}

// FuzzParseThinName checks that device-mapper names and uuids read from
// the kernel map back to thin ids only when they are exactly ours.
func FuzzParseThinName(f *testing.F) {
	for _, s := range []string{"thinctl-8:1-2-5", "thinctl-8:1-2-pool", "thinctl-8:1-2-", "thinctl-8:1-2-16777216", "thinctl-8:1-2-0005", "other"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		const key = "8:1-2"
		if id, ok := parseThinName(key, name); ok {
			if id == 0 || id > maxDeviceID || thinName(key, id) != name {
				t.Fatalf("parseThinName(%q) = %d, which names %q", name, id, thinName(key, id))
			}
		}
		if id, ok := parseThinUUID(key, name); ok && (id == 0 || id > maxDeviceID || thinUUID(key, id) != name) {
			t.Fatalf("parseThinUUID(%q) = %d, which is %q", name, id, thinUUID(key, id))
		}
	})
}

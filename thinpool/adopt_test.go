package thinpool

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/fs"
	"github.com/thinctl/thinctl/thinpool/internal/store"
)

// adoptFixture returns options for a loop-file pool in dir with a base
// (thin id 1), a layer chain and a container device.
func adoptFixture(t *testing.T, dir string) AdoptOptions {
	t.Helper()
	for name, size := range map[string]int64{"data": 3 << 30, "metadata": 64 << 20} {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		f.Truncate(size)
		f.Close()
	}
	return AdoptOptions{
		DataFile: filepath.Join(dir, "data"), MetadataFile: filepath.Join(dir, "metadata"),
		BlockSize: 64 * KiB, Filesystem: fs.XFS, BaseDeviceID: 1, BaseSize: 512 * MiB, BaseUUID: "b-uuid",
		Origin: "docker devicemapper store " + dir, TransactionID: 16,
		Devices: []AdoptDevice{
			{ID: "layer-1", DeviceID: 2, Size: 512 * MiB, Labels: map[string]string{"docker.hash": "aaa"}},
			{ID: "image-x_1", DeviceID: 3, Size: 512 * MiB, Parent: "layer-1"},
			{ID: "container-c1", DeviceID: 9, Size: 512 * MiB, Parent: "image-x_1"},
		},
	}
}

func TestAdoptRegistryWritesEveryRecordAndThePoolLast(t *testing.T) {
	dir := t.TempDir()
	o := adoptFixture(t, dir)
	root := filepath.Join(dir, "root")
	if err := adoptRegistry(root, o); err != nil {
		t.Fatal(err)
	}
	reg := store.New(stateDir(root), nil)
	cfg, err := reg.LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataFile != o.DataFile || cfg.DataSize != 3<<30 || cfg.MetadataSize != 64<<20 || cfg.BlockSize != 64*KiB ||
		cfg.BaseDeviceID != 1 || cfg.BaseSize != 512*MiB || cfg.Filesystem != fs.XFS || cfg.NextDeviceID != 10 ||
		cfg.AdoptedFrom != o.Origin || cfg.ForeignTransactionID != 16 || cfg.ExternalPool || cfg.MinFreeSpace != DefaultMinFreeSpace ||
		!strings.HasPrefix(cfg.PoolName, "thinctl-") {
		t.Errorf("pool.json: %+v", cfg)
	}
	recs, err := reg.List()
	if err != nil {
		t.Fatal(err)
	}
	var got []AdoptDevice
	for _, r := range recs {
		if !r.Initialized || r.Deleted {
			t.Errorf("record %+v", r)
		}
		got = append(got, AdoptDevice{ID: r.ID, DeviceID: r.DeviceID, Size: r.Size, Parent: r.Parent, Labels: r.Labels})
	}
	want := []AdoptDevice{o.Devices[2], o.Devices[1], o.Devices[0]} // sorted by id
	if !reflect.DeepEqual(got, want) {
		t.Errorf("records:\n%+v\nwant\n%+v", got, want)
	}
	if _, err := os.Stat(filepath.Join(root, adoptStagingName)); !os.IsNotExist(err) {
		t.Errorf("staging directory left: %v", err)
	}
	if err := adoptRegistry(root, o); !errors.Is(err, ErrAlreadyInit) {
		t.Errorf("a second adopt: %v, want ErrAlreadyInit", err)
	}
}

func TestAdoptRegistryStartsOverAfterAnInterruptedAdopt(t *testing.T) {
	dir := t.TempDir()
	o := adoptFixture(t, dir)
	root := filepath.Join(dir, "root")
	// What a kill between two record writes leaves: a staging directory
	// with some records and no pool.json; the root has no registry.
	staging := filepath.Join(root, adoptStagingName)
	os.MkdirAll(filepath.Join(staging, "devices"), 0o700)
	os.WriteFile(filepath.Join(staging, "devices", "stale.json"), []byte("{}"), 0o600)
	if Exists(root) {
		t.Fatal("an interrupted adopt counts as a pool")
	}
	if err := adoptRegistry(root, o); err != nil {
		t.Fatal(err)
	}
	recs, err := store.New(stateDir(root), nil).List()
	if err != nil || len(recs) != 3 {
		t.Fatalf("after the re-run: %d records, %v", len(recs), err)
	}
}

func TestAdoptRefusesOptionsThatWouldMakeAWrongRegistry(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(o *AdoptOptions)
		want   string
	}{
		{"a device with the base's thin id", func(o *AdoptOptions) { o.Devices[0].DeviceID = 1 }, "both name thin id 1"},
		{"two devices with one thin id", func(o *AdoptOptions) { o.Devices[1].DeviceID = 2 }, "both name thin id 2"},
		{"one id twice", func(o *AdoptOptions) { o.Devices[1].ID = "layer-1" }, `"layer-1" is given twice`},
		{"an invalid id", func(o *AdoptOptions) { o.Devices[0].ID = "a/b" }, "contains"},
		{"a parent that is not adopted", func(o *AdoptOptions) { o.Devices[2].Parent = "nope" }, `names parent "nope"`},
		{"a relative data file", func(o *AdoptOptions) { o.DataFile = "data" }, "absolute"},
		{"files and a pool device", func(o *AdoptOptions) { o.ThinPoolDevice = "vg-pool" }, "not both"},
		{"a block size the kernel refuses", func(o *AdoptOptions) { o.BlockSize = 4096 }, "block size"},
		{"no base device", func(o *AdoptOptions) { o.BaseDeviceID = 0 }, "base device"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			o := adoptFixture(t, dir)
			tc.change(&o)
			root := filepath.Join(dir, "root")
			err := adoptRegistry(root, o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if _, err := os.Stat(root); !os.IsNotExist(err) {
				t.Errorf("a refused adopt made %s", root)
			}
		})
	}
}

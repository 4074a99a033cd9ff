package dockerdm

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

func poolWith(tx uint64, ids ...uint32) *PoolView {
	v := &PoolView{Name: "p", TransactionID: tx, Compared: true}
	for _, id := range ids {
		v.Devices = append(v.Devices, ThinDevice{ID: id})
	}
	return v
}

func TestCompareAgreesWithAConsistentStore(t *testing.T) {
	root, id1 := testStore(t)
	s, err := Open(root, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r := Compare(s, poolWith(8, 1, 2, 3, 4, 5, 6, 7, 8))
	if len(r.Disagreements) != 0 {
		t.Fatalf("disagreements %v", r.Disagreements)
	}
	img := r.Images[0]
	if img.ID != id1 || img.Size != 123 || len(img.LayerReports) != 3 {
		t.Fatalf("image %+v", img)
	}
	for i, want := range []uint32{2, 3, 4} {
		if d := img.LayerReports[i].DeviceID; d == nil || *d != want {
			t.Errorf("layer %d device %v, want %d", i, d, want)
		}
	}
	c := r.Containers[0]
	if c.RWDevice == nil || *c.RWDevice != 6 || c.InitDevice == nil || *c.InitDevice != 5 {
		t.Errorf("container %+v", c)
	}
	if r.Pool.TransactionOpen || r.Pool.DockerTransaction != 8 || r.Pool.NextDeviceID != 9 || r.Base == nil || r.Base.DeviceID != 1 {
		t.Errorf("pool %+v base %+v", r.Pool, r.Base)
	}
}

func TestCompareReportsEveryKindOfDisagreement(t *testing.T) {
	tests := []struct {
		name   string
		change func(root string)
		pool   *PoolView
		want   []string // kinds
		words  string
	}{
		{"a record whose thin device the pool lacks", nil, poolWith(8, 1, 2, 3, 4, 5, 6, 7), []string{KindRecordWithoutThin}, "thin id 8"},
		{"a thin device no record names", nil, poolWith(8, 1, 2, 3, 4, 5, 6, 7, 8, 9), []string{KindThinWithoutRecord}, "thin id 9"},
		{"Docker's transaction newer than the pool's", nil, poolWith(7, 1, 2, 3, 4, 5, 6, 7, 8), []string{KindOpenTransaction}, "transaction 8"},
		{"a record marked deleted", func(root string) {
			os.WriteFile(filepath.Join(root, "devicemapper/metadata/old"), []byte(`{"device_id":9,"size":1,"transaction_id":2,"deleted":true}`), 0o600)
		}, poolWith(8, 1, 2, 3, 4, 5, 6, 7, 8, 9), []string{KindDeletedRecord}, "marked deleted"},
		{"a record no layer or container uses", func(root string) {
			os.WriteFile(filepath.Join(root, "devicemapper/metadata/stray"), []byte(`{"device_id":9,"size":1,"transaction_id":2}`), 0o600)
		}, poolWith(8, 1, 2, 3, 4, 5, 6, 7, 8, 9), []string{KindUnreferencedRecord}, "stray"},
		{"two records naming one thin id", func(root string) {
			os.WriteFile(filepath.Join(root, "devicemapper/metadata/lc"), []byte(`{"device_id":3,"size":1,"transaction_id":2}`), 0o600)
		}, poolWith(8, 1, 2, 3, 5, 6, 7, 8), []string{KindSharedThinID}, "lb and lc"},
		{"a layer whose device has no record", func(root string) {
			os.Remove(filepath.Join(root, "devicemapper/metadata/lc"))
		}, poolWith(8, 1, 2, 3, 5, 6, 7, 8), []string{KindLayerWithoutRecord}, "cache-id lc"},
		{"a container whose device has no record", func(root string) {
			os.Remove(filepath.Join(root, "devicemapper/metadata/c2rw-init"))
		}, poolWith(8, 1, 2, 3, 4, 5, 6, 8), []string{KindContainerWithoutRecord}, "init device c2rw-init"},
		{"an image whose layer is gone", func(root string) {
			os.RemoveAll(filepath.Join(root, "image/devicemapper/layerdb/sha256", chainBC[7:]))
			os.Remove(filepath.Join(root, "devicemapper/metadata/lc"))
		}, poolWith(8, 1, 2, 3, 5, 6, 7, 8), []string{KindImageWithoutLayer}, chainBC},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root, _ := testStore(t)
			if tc.change != nil {
				tc.change(root)
			}
			s, err := Open(root, OpenOptions{})
			if err != nil {
				t.Fatal(err)
			}
			r := Compare(s, tc.pool)
			var kinds []string
			var all []string
			for _, d := range r.Disagreements {
				kinds = append(kinds, d.Kind)
				all = append(all, d.String())
			}
			sort.Strings(kinds)
			if strings.Join(kinds, " ") != strings.Join(tc.want, " ") || !strings.Contains(strings.Join(all, "\n"), tc.words) {
				t.Errorf("disagreements:\n%s\nwant kinds %v saying %q", strings.Join(all, "\n"), tc.want, tc.words)
			}
		})
	}
}

func TestADeviceListThatCouldNotBeReadReportsNoThinDisagreements(t *testing.T) {
	root, _ := testStore(t)
	s, err := Open(root, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v := &PoolView{TransactionID: 8, Notes: []string{"thin_dump is not installed"}}
	r := Compare(s, v)
	if len(r.Disagreements) != 0 || len(r.Notes) != 1 {
		t.Errorf("disagreements %v notes %v", r.Disagreements, r.Notes)
	}
}

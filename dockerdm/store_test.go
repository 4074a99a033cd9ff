package dockerdm

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/errdefs"
)

func TestOpenReadsImagesLayersAndContainersAsDockerLaidThemOut(t *testing.T) {
	root, id1 := testStore(t)
	before := snapshotTree(t, root)
	s, err := Open(root, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if after := snapshotTree(t, root); after != before {
		t.Fatalf("Open changed the store:\n%s\nwas\n%s", after, before)
	}
	if len(s.Records) != 8 || s.Records[BaseHash].DeviceID != 1 || s.Records["c2rw"].DeviceID != 8 {
		t.Errorf("records %+v", s.Records)
	}
	if s.Transaction == nil || s.Transaction.OpenTransactionID != 8 || s.DeviceSet == nil || s.DeviceSet.BaseDeviceFilesystem != "ext4" {
		t.Errorf("transaction %+v, deviceset %+v", s.Transaction, s.DeviceSet)
	}
	if !strings.HasPrefix(s.Prefix, "docker-") || s.PoolName != s.Prefix+"-pool" || s.DeviceName("la") != s.Prefix+"-la" {
		t.Errorf("prefix %q pool %q", s.Prefix, s.PoolName)
	}
	if len(s.Images) != 2 {
		t.Fatalf("images %+v", s.Images)
	}
	i1 := s.Images[0]
	if i1.ID != id1 || !reflect.DeepEqual(i1.Tags, []string{"t:1"}) || !reflect.DeepEqual(i1.Layers, []string{diffA, chainAB, chainBC}) {
		t.Errorf("image t:1 %+v", i1)
	}
	if got := s.Images[1].Tags; len(got) != 2 || got[0] != "t:2" || !strings.HasPrefix(got[1], "t@sha256:") {
		t.Errorf("image t:2 tags %v", got)
	}
	l := s.Layers[chainBC]
	if l.CacheID != "lc" || l.DiffID != diffC || l.Parent != chainAB || l.Size != 3 || !l.TarSplit {
		t.Errorf("layer c %+v", l)
	}
	if s.Layers[diffA].TarSplit {
		t.Error("layer a has no tar-split but says so")
	}
	if len(s.Containers) != 2 {
		t.Fatalf("containers %+v", s.Containers)
	}
	c1 := s.Containers[0]
	if c1.Name != "c1" || c1.ID != ctr1 || c1.MountID != "c1rw" || c1.InitID != "c1rw-init" || c1.Parent != chainBC || c1.Ref != "t:1" || c1.Image != id1 || !c1.HasConfig {
		t.Errorf("container c1 %+v", c1)
	}
}

func TestOpenRejectsWhatIsNotAReadableStoreWithOneLine(t *testing.T) {
	tests := []struct {
		name   string
		change func(t *testing.T, root string) string // returns the root to open
		want   error
		words  []string
	}{
		{"a root that does not exist", func(t *testing.T, root string) string { return filepath.Join(root, "nope") }, ErrNoStore, []string{"nope", "does not exist"}},
		{"an overlay2 root", func(t *testing.T, root string) string {
			other := t.TempDir()
			os.MkdirAll(filepath.Join(other, "image", "overlay2"), 0o755)
			return other
		}, ErrNotDevicemapper, []string{"no devicemapper/", "overlay2"}},
		{"a store without its data file", func(t *testing.T, root string) string {
			os.Remove(filepath.Join(root, "devicemapper/devicemapper/data"))
			return root
		}, ErrPartial, []string{"devicemapper/devicemapper/data is missing"}},
		{"a store without metadata records", func(t *testing.T, root string) string {
			os.RemoveAll(filepath.Join(root, "devicemapper/metadata"))
			return root
		}, ErrPartial, []string{"devicemapper/metadata is missing"}},
		{"a store without the base record", func(t *testing.T, root string) string {
			os.Remove(filepath.Join(root, "devicemapper/metadata/base"))
			return root
		}, ErrPartial, []string{"no base"}},
		{"a garbage device record", func(t *testing.T, root string) string {
			os.WriteFile(filepath.Join(root, "devicemapper/metadata/lb"), []byte("\x00\x01garbage"), 0o600)
			return root
		}, ErrCorrupt, []string{"devicemapper/metadata/lb", "not a JSON object"}},
		{"a record with a thin id beyond 24 bits", func(t *testing.T, root string) string {
			os.WriteFile(filepath.Join(root, "devicemapper/metadata/lb"), []byte(`{"device_id":16777216,"size":1,"transaction_id":1}`), 0o600)
			return root
		}, ErrCorrupt, []string{"16777216", "24-bit"}},
		{"an image configuration that does not hash to its name", func(t *testing.T, root string) string {
			matches, _ := filepath.Glob(filepath.Join(root, "image/devicemapper/imagedb/content/sha256/*"))
			os.WriteFile(matches[0], []byte(`{"rootfs":{"type":"layers","diff_ids":[]}}`), 0o600)
			return root
		}, ErrCorrupt, []string{"does not hash to its name"}},
		{"a layer whose diff is not a digest", func(t *testing.T, root string) string {
			os.WriteFile(filepath.Join(root, "image/devicemapper/layerdb/sha256", diffA[7:], "diff"), []byte("sha256:xyz"), 0o600)
			return root
		}, ErrCorrupt, []string{diffA[7:], `diff "sha256:xyz"`}},
		{"a cache-id that climbs out of the metadata directory", func(t *testing.T, root string) string {
			os.WriteFile(filepath.Join(root, "image/devicemapper/layerdb/sha256", diffA[7:], "cache-id"), []byte("../../etc"), 0o600)
			return root
		}, ErrCorrupt, []string{"cannot name a device"}},
		{"a container configuration for another container", func(t *testing.T, root string) string {
			b, _ := os.ReadFile(filepath.Join(root, "containers", ctr1, "config.v2.json"))
			os.WriteFile(filepath.Join(root, "containers", ctr1, "config.v2.json"), []byte(strings.ReplaceAll(string(b), ctr1, ctr2)), 0o600)
			return root
		}, ErrCorrupt, []string{"is for container " + ctr2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root, _ := testStore(t)
			open := tc.change(t, root)
			before := snapshotTree(t, root)
			_, err := Open(open, OpenOptions{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("Open: %v, want %v", err, tc.want)
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("error is not one line: %q", msg)
			}
			for _, w := range tc.words {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not say %q", msg, w)
				}
			}
			if after := snapshotTree(t, root); after != before {
				t.Errorf("Open changed the store")
			}
		})
	}
}

func TestTheErrorsMatchTheirClasses(t *testing.T) {
	for _, c := range []struct {
		err, class error
	}{{ErrNoStore, errdefs.ErrNotFound}, {ErrNotDevicemapper, errdefs.ErrInvalidArgument}, {ErrPartial, errdefs.ErrCorrupt}, {ErrCorrupt, errdefs.ErrCorrupt}, {ErrHeld, errdefs.ErrBusy}} {
		if !errors.Is(c.err, c.class) {
			t.Errorf("%v does not match %v", c.err, c.class)
		}
	}
}

func TestOpenSkipsLayerDirectoriesDockerItselfSkips(t *testing.T) {
	root, _ := testStore(t)
	writeFiles(t, root, map[string]string{
		"image/devicemapper/layerdb/sha256/" + diffB[7:] + "-123-removing/cache-id": "x",
		"image/devicemapper/layerdb/tmp/write-set-1/cache-id":                       "x",
	})
	s, err := Open(root, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Layers) != 3 || len(s.Notes) != 1 || !strings.Contains(s.Notes[0], "-removing") {
		t.Errorf("layers %d, notes %v", len(s.Layers), s.Notes)
	}
}

func TestOpenReadsTheSingleJSONFileOfDockerBefore17(t *testing.T) {
	root, _ := testStore(t)
	os.RemoveAll(filepath.Join(root, "devicemapper/metadata"))
	// The shape of the seed's dump (Docker 0.11): the base's hash is "".
	writeFiles(t, root, map[string]string{"devicemapper/devicemapper/json": `{"Devices":{
		"":{"device_id":0,"size":10737418240,"transaction_id":1,"initialized":true},
		"la":{"device_id":1,"size":10737418240,"transaction_id":2,"initialized":true}}}`})
	s, err := Open(root, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !s.Legacy || len(s.Records) != 2 || s.Records[BaseHash].DeviceID != 0 || s.Records["la"].DeviceID != 1 || s.Records["la"].Hash != "la" {
		t.Errorf("legacy %v records %+v", s.Legacy, s.Records)
	}
}

func TestAStoreOnAnExternalPoolNeedsNoLoopFiles(t *testing.T) {
	root, _ := testStore(t)
	os.RemoveAll(filepath.Join(root, "devicemapper/devicemapper"))
	s, err := Open(root, OpenOptions{PoolName: "vg-docker--pool"})
	if err != nil {
		t.Fatal(err)
	}
	if s.PoolName != "vg-docker--pool" || s.MetadataFile != "" || s.DataFile != "" {
		t.Errorf("pool %q files %q %q", s.PoolName, s.MetadataFile, s.DataFile)
	}
}

package dockerdm

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/thinpool"
)

func planOf(t *testing.T, root string, pool *PoolView, opts AdoptOptions) ([]string, *AdoptResult, error) {
	t.Helper()
	s, err := Open(root, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pool.DataBlockSize = 128
	o, res, err := Plan(s, Compare(s, pool), opts)
	if err != nil {
		return nil, nil, err
	}
	var lines []string
	for _, d := range o.Devices {
		lines = append(lines, fmt.Sprintf("%s %d parent=%s hash=%s kind=%s", d.ID, d.DeviceID, d.Parent, d.Labels[LabelHash], d.Labels[LabelKind]))
	}
	if o.BaseDeviceID != 1 || o.BaseSize != 512<<20 || o.BlockSize != 64<<10 || o.DataFile != s.DataFile || o.TransactionID != pool.TransactionID {
		t.Errorf("adopt options %+v", o)
	}
	return lines, res, nil
}

func TestPlanNamesEveryDeviceAfterWhatItHolds(t *testing.T) {
	root, id1 := testStore(t)
	lines, res, err := planOf(t, root, poolWith(8, 1, 2, 3, 4, 5, 6, 7, 8), AdoptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Layers come in chain id order: chain(a,b,c) 2fce..., chain(a,b)
	// 51c0..., a ca97...; then containers by name.
	want := []string{
		"image-t_1 4 parent=layer-51c0c8ace484 hash=lc kind=layer",
		"layer-51c0c8ace484 3 parent=image-t_2 hash=lb kind=layer",
		"image-t_2 2 parent= hash=la kind=layer",
		"container-c1-init 5 parent=image-t_1 hash=c1rw-init kind=container-init",
		"container-c1 6 parent=container-c1-init hash=c1rw kind=container",
		"container-c2-init 7 parent=image-t_2 hash=c2rw-init kind=container-init",
		"container-c2 8 parent=container-c2-init hash=c2rw kind=container",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("devices:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	if len(res.LeftOut) != 0 {
		t.Errorf("left out: %v", res.LeftOut)
	}
	// The keys docs/cli.md lists for -o json.
	js, _ := json.Marshal(res)
	for _, k := range []string{`"docker_root"`, `"root"`, `"pool"`, `"base_device_id":1`, `"filesystem":"ext4"`, `"devices"`, `"id":"container-c1"`,
		`"kind":"container"`, `"hash":"c1rw"`, `"device_id":6`, `"parent":"container-c1-init"`, `"what":"container c1"`, `"transaction_id":8`} {
		if !strings.Contains(string(js), k) {
			t.Errorf("JSON lacks %s: %s", k, js)
		}
	}
	for _, d := range res.Devices {
		if d.ID == "image-t_1" && !strings.Contains(d.What, "t:1") {
			t.Errorf("%+v does not say it is image t:1 (%s)", d, id1)
		}
	}
}

func TestPlanRefusesWhatWouldMakeTheResultWrongUnlessToldHowToResolveIt(t *testing.T) {
	for _, tc := range []struct {
		name     string
		change   func(root string)
		pool     *PoolView
		want     error
		words    string
		resolved AdoptOptions
		leftOut  string
	}{
		{"an open transaction", nil, poolWith(7, 1, 2, 3, 4, 5, 6, 7, 8), ErrOpenTransaction, "transaction 8",
			AdoptOptions{DropOpenTransaction: true}, "open transaction 8 (thin id 8)"},
		{"a record whose thin device is missing", nil, poolWith(8, 1, 2, 3, 4, 5, 6, 7), ErrMissingDevices, "thin id 8",
			AdoptOptions{SkipMissing: true}, "its thin id 8 is not in the pool"},
		{"a layer without a record", func(root string) { os.Remove(filepath.Join(root, "devicemapper/metadata/lb")) },
			poolWith(8, 1, 2, 4, 5, 6, 7, 8), ErrMissingDevices, "cache-id lb",
			AdoptOptions{SkipMissing: true}, "(device lb): it has no device record"},
		{"two records sharing a thin id", func(root string) {
			os.WriteFile(filepath.Join(root, "devicemapper/metadata/dup"), []byte(`{"device_id":3,"size":1,"transaction_id":2}`), 0o600)
		}, poolWith(8, 1, 2, 3, 4, 5, 6, 7, 8), ErrNotAdoptable, "both name thin id 3", AdoptOptions{DropOpenTransaction: true, SkipMissing: true}, ""},
		{"a pool that needs a check", nil, &PoolView{Name: "p", TransactionID: 8, Compared: true, NeedsCheck: true}, ErrNotAdoptable, "needs_check",
			AdoptOptions{DropOpenTransaction: true, SkipMissing: true}, ""},
		{"a pool whose devices were not listed", nil, &PoolView{Name: "p", TransactionID: 8, Notes: []string{"thin_dump is not installed"}}, ErrNotAdoptable, "thin_dump is not installed",
			AdoptOptions{DropOpenTransaction: true, SkipMissing: true}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root, _ := testStore(t)
			if tc.change != nil {
				tc.change(root)
			}
			_, _, err := planOf(t, root, tc.pool, AdoptOptions{})
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.words) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("got %v, want %v naming %q on one line", err, tc.want, tc.words)
			}
			lines, res, err := planOf(t, root, tc.pool, tc.resolved)
			if tc.leftOut == "" {
				if !errors.Is(err, tc.want) {
					t.Fatalf("with %+v: %v, want still %v", tc.resolved, err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("with %+v: %v", tc.resolved, err)
			}
			if !strings.Contains(strings.Join(res.LeftOut, "\n"), tc.leftOut) {
				t.Errorf("left out %v, want one saying %q", res.LeftOut, tc.leftOut)
			}
			if len(lines) != 6 {
				t.Errorf("%d devices adopted, want 6:\n%s", len(lines), strings.Join(lines, "\n"))
			}
		})
	}
}

func TestPlanKeepsIDsUniqueAndValid(t *testing.T) {
	for _, tc := range []struct{ tag, want string }{
		{"t:1", "image-t_1"},
		{"localhost:5000/x/y:v1.2", "image-localhost_5000_x_y_v1.2"},
	} {
		if got := "image-" + idChars(tc.tag); got != tc.want {
			t.Errorf("tag %s: id %s, want %s", tc.tag, got, tc.want)
		}
	}
	// A live record no layer or container uses is adopted as docker-<hash>.
	root, _ := testStore(t)
	os.WriteFile(filepath.Join(root, "devicemapper/metadata/orphan"), []byte(`{"device_id":9,"size":1048576,"transaction_id":2}`), 0o600)
	lines, _, err := planOf(t, root, poolWith(8, 1, 2, 3, 4, 5, 6, 7, 8, 9), AdoptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if last := lines[len(lines)-1]; last != "docker-orphan 9 parent= hash=orphan kind=unreferenced" {
		t.Errorf("unreferenced record adopted as %q", last)
	}
}

func TestAdoptingALayerThatHundredsOfTagsAndImagesShareKeepsItsRecordSmall(t *testing.T) {
	root, _ := testStore(t)
	// 200 images differing only in their creation time, all of layer a,
	// and each tagged; the first also carries 200 more tags (the store's own
	// tags are replaced, its image t:2 of layer a is left untagged).
	repos := map[string]map[string]string{}
	tag := func(ref, id string) {
		repo := ref[:strings.LastIndex(ref, ":")]
		if repos[repo] == nil {
			repos[repo] = map[string]string{}
		}
		repos[repo][ref] = id
	}
	for i := 0; i < 200; i++ {
		cfg := fmt.Sprintf(`{"architecture":"amd64","created":"2023-11-14T22:%02d:%02dZ","os":"linux","rootfs":{"type":"layers","diff_ids":["%s"]}}`, i/60, i%60, diffA)
		id := sum(cfg)
		writeFiles(t, root, map[string]string{"image/devicemapper/imagedb/content/sha256/" + id[7:]: cfg})
		tag(fmt.Sprintf("registry.example.com/team/service-%03d:v1.2.%d", i, i), id)
		if i == 0 {
			for j := 0; j < 200; j++ {
				tag(fmt.Sprintf("registry.example.com/team/service-000:build-%04d", j), id)
			}
		}
	}
	js, _ := json.Marshal(map[string]any{"Repositories": repos})
	writeFiles(t, root, map[string]string{"image/devicemapper/repositories.json": string(js)})
	s, err := Open(root, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	o, res, err := Plan(s, Compare(s, poolWith(8, 1, 2, 3, 4, 5, 6, 7, 8)), AdoptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, d := range o.Devices {
		if err := thinpool.ValidateLabels(d.Labels); err != nil {
			t.Errorf("device %s: %v", d.ID, err)
		}
		if d.Labels[LabelHash] != "la" {
			continue
		}
		found = true
		tags := strings.Split(d.Labels[LabelTags], ",")
		if d.Labels[LabelTagsTotal] != "400" || len(tags) < 10 || len(d.Labels[LabelTags]) > listLabelMax {
			t.Errorf("layer a: %d tags listed in %d bytes, total %q; want a prefix within %d bytes and a total of 400",
				len(tags), len(d.Labels[LabelTags]), d.Labels[LabelTagsTotal], listLabelMax)
		}
		if d.Labels[LabelImagesTotal] != "201" || !strings.HasPrefix(d.Labels[LabelImages], "sha256:") {
			t.Errorf("layer a: images %q, total %q; want a total of 201", d.Labels[LabelImages], d.Labels[LabelImagesTotal])
		}
	}
	if !found {
		t.Fatal("no device for layer a")
	}
	for _, d := range res.Devices {
		if d.Hash == "la" && (len(d.What) > 200 || !strings.Contains(d.What, "more")) {
			t.Errorf("HOLDS of layer a is %d bytes: %.100s...", len(d.What), d.What)
		}
	}
}

package dockerdm

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// Digests of "a", "b", "c" and the chain ids of [a b c] (computed with
// sha256sum, not with this package).
const (
	diffA   = "sha256:ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"
	diffB   = "sha256:3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d"
	diffC   = "sha256:2e7d2c03a9507ae265ecf5b5356885a53393a2029d241394997265a1a25aefc6"
	chainAB = "sha256:51c0c8ace48498d6f5fee6b0592cc06f2da0f3cbe09c5a34a97dce85c3889676"
	chainBC = "sha256:2fce7f8ce91bcf0a1428b36e1024639fdbd9469eea762dba98aa749631885106"
)

const (
	ctr1 = "1111111111111111111111111111111111111111111111111111111111111111"
	ctr2 = "2222222222222222222222222222222222222222222222222222222222222222"
)

// testStore writes a store as Docker 20.10 lays it out: image "t:1" with
// layers a, b, c; image "t:2" with layer a only; container c1 on t:1 and
// c2 on t:2. It returns the root and the id of t:1.
func testStore(t *testing.T) (string, string) {
	t.Helper()
	root := t.TempDir()
	cfg1 := fmt.Sprintf(`{"architecture":"amd64","created":"2023-11-14T22:13:20Z","os":"linux","rootfs":{"type":"layers","diff_ids":["%s","%s","%s"]}}`, diffA, diffB, diffC)
	cfg2 := fmt.Sprintf(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["%s"]}}`, diffA)
	id1, id2 := sum(cfg1), sum(cfg2)
	files := map[string]string{
		"devicemapper/devicemapper/data":                                          "",
		"devicemapper/devicemapper/metadata":                                      "",
		"devicemapper/metadata/base":                                              `{"device_id":1,"size":536870912,"transaction_id":1,"initialized":true,"deleted":false}`,
		"devicemapper/metadata/deviceset-metadata":                                `{"next_device_id":9,"BaseDeviceUUID":"81b3d002-6a7b-400d-9831-050d68cc27f4","BaseDeviceFilesystem":"ext4"}`,
		"devicemapper/metadata/transaction-metadata":                              `{"open_transaction_id":8,"device_hash":"c1rw","device_id":8}`,
		"devicemapper/metadata/la":                                                `{"device_id":2,"size":536870912,"transaction_id":2,"initialized":false,"deleted":false}`,
		"devicemapper/metadata/lb":                                                `{"device_id":3,"size":536870912,"transaction_id":3,"initialized":false,"deleted":false}`,
		"devicemapper/metadata/lc":                                                `{"device_id":4,"size":536870912,"transaction_id":4,"initialized":false,"deleted":false}`,
		"devicemapper/metadata/c1rw-init":                                         `{"device_id":5,"size":536870912,"transaction_id":5,"initialized":false,"deleted":false}`,
		"devicemapper/metadata/c1rw":                                              `{"device_id":6,"size":536870912,"transaction_id":6,"initialized":false,"deleted":false}`,
		"devicemapper/metadata/c2rw-init":                                         `{"device_id":7,"size":536870912,"transaction_id":7,"initialized":false,"deleted":false}`,
		"devicemapper/metadata/c2rw":                                              `{"device_id":8,"size":536870912,"transaction_id":8,"initialized":false,"deleted":false}`,
		"devicemapper/metadata/.tmp123":                                           `garbage Docker skips`,
		"image/devicemapper/repositories.json":                                    fmt.Sprintf(`{"Repositories":{"t":{"t:1":"%s","t:2":"%s","t@sha256:%s":"%s"}}}`, id1, id2, strings.Repeat("9", 64), id2),
		"image/devicemapper/imagedb/content/sha256/" + id1[7:]:                    cfg1,
		"image/devicemapper/imagedb/content/sha256/" + id2[7:]:                    cfg2,
		"image/devicemapper/layerdb/sha256/" + diffA[7:] + "/cache-id":            "la",
		"image/devicemapper/layerdb/sha256/" + diffA[7:] + "/diff":                diffA,
		"image/devicemapper/layerdb/sha256/" + diffA[7:] + "/size":                "100",
		"image/devicemapper/layerdb/sha256/" + chainAB[7:] + "/cache-id":          "lb",
		"image/devicemapper/layerdb/sha256/" + chainAB[7:] + "/diff":              diffB,
		"image/devicemapper/layerdb/sha256/" + chainAB[7:] + "/parent":            diffA,
		"image/devicemapper/layerdb/sha256/" + chainAB[7:] + "/size":              "20",
		"image/devicemapper/layerdb/sha256/" + chainBC[7:] + "/cache-id":          "lc",
		"image/devicemapper/layerdb/sha256/" + chainBC[7:] + "/diff":              diffC,
		"image/devicemapper/layerdb/sha256/" + chainBC[7:] + "/parent":            chainAB,
		"image/devicemapper/layerdb/sha256/" + chainBC[7:] + "/size":              "3",
		"image/devicemapper/layerdb/sha256/" + chainBC[7:] + "/tar-split.json.gz": "",
		"image/devicemapper/layerdb/mounts/" + ctr1 + "/mount-id":                 "c1rw",
		"image/devicemapper/layerdb/mounts/" + ctr1 + "/init-id":                  "c1rw-init",
		"image/devicemapper/layerdb/mounts/" + ctr1 + "/parent":                   chainBC,
		"image/devicemapper/layerdb/mounts/" + ctr2 + "/mount-id":                 "c2rw",
		"image/devicemapper/layerdb/mounts/" + ctr2 + "/init-id":                  "c2rw-init",
		"image/devicemapper/layerdb/mounts/" + ctr2 + "/parent":                   diffA,
		"containers/" + ctr1 + "/config.v2.json":                                  fmt.Sprintf(`{"State":{"Running":false},"ID":"%s","Config":{"Image":"t:1"},"Image":"%s","Name":"/c1","Driver":"devicemapper"}`, ctr1, id1),
		"containers/" + ctr2 + "/config.v2.json":                                  fmt.Sprintf(`{"State":{"Running":false},"ID":"%s","Config":{"Image":"t:2"},"Image":"%s","Name":"/c2","Driver":"devicemapper"}`, ctr2, id2),
	}
	writeFiles(t, root, files)
	return root, id1
}

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(h[:])
}

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// snapshotTree describes every file and directory under root (mode, size,
// mtime, content) so that a test can show nothing was written.
func snapshotTree(t *testing.T, root string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		line := fmt.Sprintf("%s %v %d %d", p, fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		if fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			line += " " + sum(string(b))
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

package driver_test

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/thinctl/thinctl/driver"
	"github.com/thinctl/thinctl/driver/drivertest"
)

// applyHostile runs the hostile-archive catalogue through ApplyTar into a
// plain directory beside the sentinel.
func applyHostile(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the hostile-archive cases set owners and make device nodes: they need root")
	}
	for _, c := range drivertest.HostileArchives() {
		t.Run(c.Name, func(t *testing.T) {
			dir := t.TempDir()
			outside, layer := filepath.Join(dir, "sentinel"), filepath.Join(dir, "layer")
			for _, p := range []string{outside, layer} {
				if err := os.Mkdir(p, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if err := drivertest.MakeSentinel(outside); err != nil {
				t.Fatal(err)
			}
			drivertest.CheckHostile(t, c, outside, func(stream []byte) (string, error) {
				_, err := driver.ApplyTar(layer, bytes.NewReader(stream), nil)
				return layer, err
			})
			if ents, _ := os.ReadDir(dir); len(ents) != 2 {
				t.Errorf("the import created something beside the layer: %v", ents)
			}
		})
	}
}

func TestNoHostileArchiveChangesAnythingOutsideTheLayer(t *testing.T) {
	applyHostile(t)
}

func TestNoHostileArchiveChangesAnythingOutsideTheLayerWithoutOpenat2(t *testing.T) {
	*driver.ForceUserspaceResolve = true
	defer func() { *driver.ForceUserspaceResolve = false }()
	applyHostile(t)
}

// TestTheHugeArchivesAnnounceWhatTheyClaim makes sure the size cases are
// what their names say: a tar reader sees a 2^60-byte file in each.
func TestTheHugeArchivesAnnounceWhatTheyClaim(t *testing.T) {
	for name, stream := range map[string][]byte{
		"pax sparse": drivertest.HugeSparsePAX("big", 1<<60),
		"old gnu":    drivertest.HugeSparseOldGNU("big", 1<<60),
		"regular":    drivertest.HugeRegular("big", 1<<60),
	} {
		h, err := tar.NewReader(bytes.NewReader(stream)).Next()
		if err != nil || h.Name != "big" || h.Size != 1<<60 {
			t.Errorf("%s: %d bytes of archive read as %+v, %v", name, len(stream), h, err)
		}
	}
}

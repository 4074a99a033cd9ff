package overlayfallback

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinctl/thinctl/driver"
)

func TestALayerDirectoryThatIsASymlinkIsRefusedByEveryReader(t *testing.T) {
	outside := t.TempDir()
	must(t, os.WriteFile(filepath.Join(outside, "secret"), []byte("the host's secret"), 0o600))
	before, err := os.ReadDir(outside)
	must(t, err)
	upper := filepath.Join(t.TempDir(), "diff")
	must(t, os.Symlink(outside, upper))
	real := t.TempDir()
	for _, f := range []Format{Overlay, Aufs} {
		var buf bytes.Buffer
		if err := WriteDiff(&buf, upper, f); !errors.Is(err, driver.ErrBadLayerRoot) || !strings.Contains(err.Error(), upper) {
			t.Errorf("%v WriteDiff of a symlinked layer = %v, want ErrBadLayerRoot naming it", f, err)
		}
		if bytes.Contains(buf.Bytes(), []byte("secret")) {
			t.Errorf("%v WriteDiff wrote what the symlink points at", f)
		}
		if n, err := DiffSize(upper, f); !errors.Is(err, driver.ErrBadLayerRoot) {
			t.Errorf("%v DiffSize = %d, %v; want ErrBadLayerRoot", f, n, err)
		}
		if cs, err := Changes(upper, nil, f); !errors.Is(err, driver.ErrBadLayerRoot) {
			t.Errorf("%v Changes = %v, %v; want ErrBadLayerRoot", f, cs, err)
		}
		if cs, err := Changes(real, []string{upper}, f); !errors.Is(err, driver.ErrBadLayerRoot) {
			t.Errorf("%v Changes over a symlinked lower = %v, %v; want ErrBadLayerRoot", f, cs, err)
		}
	}
	after, err := os.ReadDir(outside)
	must(t, err)
	if len(after) != len(before) {
		t.Errorf("the outside directory changed: %v, was %v", after, before)
	}
	if b, _ := os.ReadFile(filepath.Join(outside, "secret")); string(b) != "the host's secret" {
		t.Errorf("the outside file now holds %q", b)
	}
}

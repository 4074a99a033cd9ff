package metaswap

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinctl/thinctl/errdefs"
)

func TestASpareMetadataDeviceThatIsThePoolsOwnOrNotABlockDeviceIsRefused(t *testing.T) {
	dir := t.TempDir()
	data, meta, other := filepath.Join(dir, "data"), filepath.Join(dir, "meta"), filepath.Join(dir, "other")
	for _, f := range []string{data, meta, other} {
		if err := os.WriteFile(f, []byte("keep "+f), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for spare, want := range map[string]string{
		data:                       "one of the pool's own devices",
		meta:                       "one of the pool's own devices",
		other:                      "not a block device",
		filepath.Join(dir, "none"): "spare metadata device",
		"/dev/null":                "not a block device",
	} {
		err := ValidSpare(spare, data, meta)
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), want) {
			t.Errorf("ValidSpare(%s) = %v, want invalid argument with %q", spare, err, want)
		}
	}
	for _, f := range []string{data, meta, other} {
		if b, _ := os.ReadFile(f); string(b) != "keep "+f {
			t.Errorf("%s changed: %q", f, b)
		}
	}
}

package thinpool

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinctl/thinctl/errdefs"
	"github.com/thinctl/thinctl/thinpool/internal/store"
)

func TestASpareMetadataDeviceThatIsThePoolsOwnOrNotABlockDeviceIsRefused(t *testing.T) {
	dir := t.TempDir()
	data, meta, other := filepath.Join(dir, "data"), filepath.Join(dir, "meta"), filepath.Join(dir, "other")
	for _, f := range []string{data, meta, other} {
		if err := os.WriteFile(f, []byte("keep "+f), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p := &Pool{cfg: store.Config{DataDevice: data, MetadataDevice: meta}}
	for spare, want := range map[string]string{
		data:                       "one of the pool's own devices",
		meta:                       "one of the pool's own devices",
		other:                      "not a block device",
		filepath.Join(dir, "none"): "spare metadata device",
		"/dev/null":                "not a block device",
	} {
		err := p.validSpare(spare)
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), want) {
			t.Errorf("validSpare(%s) = %v, want invalid argument with %q", spare, err, want)
		}
	}
	for _, f := range []string{data, meta, other} {
		if b, _ := os.ReadFile(f); string(b) != "keep "+f {
			t.Errorf("%s changed: %q", f, b)
		}
	}
}

func TestFsckRefusesAnIDThatEscapesTheRoot(t *testing.T) {
	for _, id := range []string{"../etc", "a/b", "", ".."} {
		if _, err := (&Pool{}).Fsck(context.Background(), id); !errors.Is(err, ErrInvalidID) {
			t.Errorf("Fsck(%q) = %v, want ErrInvalidID", id, err)
		}
	}
}

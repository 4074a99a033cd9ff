package thinpool

import (
	"testing"

	"github.com/thinctl/thinctl/thinpool/internal/store"
)

// FuzzParseThinName checks that device-mapper names and uuids read from
// the kernel map back to thin ids only when they are exactly ours.
func FuzzParseThinName(f *testing.F) {
	for _, s := range []string{"thinctl-8:1-2-5", "thinctl-8:1-2-pool", "thinctl-8:1-2-", "thinctl-8:1-2-16777216", "thinctl-8:1-2-0005", "other"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		const key = "8:1-2"
		if id, ok := parseThinName(key, name); ok {
			if id == 0 || id > store.MaxDeviceID || thinName(key, id) != name {
				t.Fatalf("parseThinName(%q) = %d, which names %q", name, id, thinName(key, id))
			}
		}
		if id, ok := parseThinUUID(key, name); ok && (id == 0 || id > store.MaxDeviceID || thinUUID(key, id) != name) {
			t.Fatalf("parseThinUUID(%q) = %d, which is %q", name, id, thinUUID(key, id))
		}
	})
}

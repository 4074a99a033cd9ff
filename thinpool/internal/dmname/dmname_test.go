package dmname

import (
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/thinpool/internal/store"
)

func TestNames(t *testing.T) {
	key := "4294967295:1048575-18446744073709551615" // the longest key possible
	t.Run("the longest thin name fits device-mapper's 127 bytes", func(t *testing.T) {
		if n := Thin(key, store.MaxDeviceID); len(n) > 127 {
			t.Fatalf("%q is %d bytes", n, len(n))
		}
		if n := Pool(key); len(n) > 127 {
			t.Fatalf("%q is %d bytes", n, len(n))
		}
	})
	t.Run("a thin uuid parses back to its device id", func(t *testing.T) {
		id, ok := ParseThinUUID("8:1-12", ThinUUID("8:1-12", 4711))
		if !ok || id != 4711 {
			t.Fatalf("ParseThinUUID = %d, %v", id, ok)
		}
	})
	t.Run("a thin name parses back to its device id", func(t *testing.T) {
		id, ok := ParseThin("8:1-12", Thin("8:1-12", 9))
		if !ok || id != 9 {
			t.Fatalf("ParseThin = %d, %v", id, ok)
		}
	})
	notOurs := []struct{ name, uuid string }{
		{"the pool's uuid", PoolUUID("8:1-12")},
		{"another root's device", ThinUUID("8:1-13", 9)},
		{"a root whose key extends ours", "THINCTL-8:1-123-9"},
		{"an LVM volume", "LVM-abcdef"},
		{"device id 0", "THINCTL-8:1-12-0"},
		{"a device id beyond 24 bits", "THINCTL-8:1-12-16777216"},
	}
	for _, c := range notOurs {
		t.Run(c.name+" is not one of this root's thin devices", func(t *testing.T) {
			if id, ok := ParseThinUUID("8:1-12", c.uuid); ok {
				t.Fatalf("ParseThinUUID(%q) = %d, true", c.uuid, id)
			}
		})
	}
	t.Run("a root key comes from the directory's device and inode", func(t *testing.T) {
		dir := t.TempDir()
		key, err := RootKey(dir)
		if err != nil {
			t.Fatal(err)
		}
		var st unix.Stat_t
		unix.Stat(dir, &st)
		if !strings.HasSuffix(key, "-"+strconv.FormatUint(st.Ino, 10)) || strings.Count(key, ":") != 1 {
			t.Fatalf("RootKey = %q, inode %d", key, st.Ino)
		}
	})
}

// FuzzParseThinName checks that device-mapper names and uuids read from
// the kernel map back to thin ids only when they are exactly ours.
func FuzzParseThinName(f *testing.F) {
	for _, s := range []string{"thinctl-8:1-2-5", "thinctl-8:1-2-pool", "thinctl-8:1-2-", "thinctl-8:1-2-16777216", "thinctl-8:1-2-0005", "other"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		const key = "8:1-2"
		if id, ok := ParseThin(key, name); ok {
			if id == 0 || id > store.MaxDeviceID || Thin(key, id) != name {
				t.Fatalf("ParseThin(%q) = %d, which names %q", name, id, Thin(key, id))
			}
		}
		if id, ok := ParseThinUUID(key, name); ok && (id == 0 || id > store.MaxDeviceID || ThinUUID(key, id) != name) {
			t.Fatalf("ParseThinUUID(%q) = %d, which is %q", name, id, ThinUUID(key, id))
		}
	})
}

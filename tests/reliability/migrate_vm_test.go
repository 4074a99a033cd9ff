//go:build vm

package reliability

import (
	"encoding/json"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/thinctl/thinctl/internal/testenv"
)

// downgradeToV1 turns the rig's root back into a version 1 root (as the
// release before the journal wrote it: pool.json at version 1, one JSON
// file per device under devices/), so the next command migrates it.
func downgradeToV1(t *testing.T, r *rig) {
	t.Helper()
	dir := filepath.Join(r.root, "devicemapper")
	docs, err := testenv.RegistryDocuments(r.root)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "devices"), 0o700); err != nil {
		t.Fatal(err)
	}
	v1 := func(b []byte) []byte {
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		m["version"] = 1
		out, err := json.MarshalIndent(m, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		return append(out, '\n')
	}
	for id, b := range docs {
		if err := os.WriteFile(filepath.Join(dir, "devices", id+".json"), v1(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pool, err := os.ReadFile(filepath.Join(dir, "pool.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pool.json"), v1(pool), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"registry", "journal"} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	// The release fsynced every file it wrote; so does this, before a
	// power cut can throw the page cache away.
	syscall.Sync()
}

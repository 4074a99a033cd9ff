package store

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/pkg/errors"
)

// The fixtures under testdata/v1-* were written by the registry code of
// the release before the journal (version 1): a loop pool with deferred
// deletions pending, labels, a grow pending and an interrupted delete; an
// external pool with a deferred deletion and an interrupted create.
var v1Fixtures = []string{"v1-loop", "v1-external"}

// copyFixture copies testdata/<name> into a new directory and returns its
// devicemapper directory.
func copyFixture(t *testing.T, name string) string {
	t.Helper()
	root := t.TempDir()
	src := filepath.Join("testdata", name)
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		dst := filepath.Join(root, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o700)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "devicemapper")
}

// v1State reads a fixture's records and transaction with the v1 reader.
func v1State(t *testing.T, dir string) ([]Device, *Tx) {
	t.Helper()
	v1 := v1Registry{dir: dir}
	recs, err := v1.List()
	if err != nil {
		t.Fatal(err)
	}
	tx, err := v1.LeftTx()
	if err != nil {
		t.Fatal(err)
	}
	return recs, tx
}

// fileContents returns every file under dir with its contents.
func fileContents(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(path)
			rel, _ := filepath.Rel(dir, path)
			out[rel] = string(b)
		}
		return nil
	})
	return out
}

// assertMigrated checks that dir is a complete version 3 root holding
// exactly the v1 records and transaction.
func assertMigrated(t *testing.T, dir string, recs []Device, tx *Tx, cfg Config) {
	t.Helper()
	r := New(dir, nil)
	defer r.Close()
	got, err := r.LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	want := cfg
	want.Version = Version
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("pool.json after migration %+v, want %+v", got, want)
	}
	if err := r.RemoveV1Leftovers(); err != nil {
		t.Fatal(err)
	}
	gotRecs, err := r.List()
	if err != nil {
		t.Fatal(err)
	}
	for i := range recs {
		recs[i].Version = RecordVersion
	}
	if !reflect.DeepEqual(gotRecs, recs) {
		t.Fatalf("records after migration:\n%+v\nwant\n%+v", gotRecs, recs)
	}
	gotTx, err := r.LeftTx()
	if err != nil {
		t.Fatal(err)
	}
	if tx != nil {
		tx.Version = RecordVersion
	}
	if !reflect.DeepEqual(gotTx, tx) {
		t.Fatalf("transaction after migration %+v, want %+v", gotTx, tx)
	}
	for _, leftover := range []string{devicesDirName, txFileName} {
		if _, err := os.Stat(filepath.Join(dir, leftover)); !os.IsNotExist(err) {
			t.Fatalf("%s is still there after migration (%v)", leftover, err)
		}
	}
	// The next id is past every id the v1 root used.
	highest := uint32(0)
	for _, d := range recs {
		highest = max(highest, d.DeviceID)
	}
	if tx != nil {
		highest = max(highest, tx.DeviceID)
	}
	if r.idx.hint() <= highest {
		t.Fatalf("allocation hint %d is not past the highest id in use (%d)", r.idx.hint(), highest)
	}
}

func TestAVersion1RootMigratesWithEveryRecordLabelAndPendingChange(t *testing.T) {
	for _, name := range v1Fixtures {
		t.Run(name+" converts to version 3 and reads back the same", func(t *testing.T) {
			dir := copyFixture(t, name)
			recs, tx := v1State(t, dir)
			if len(recs) < 3 || tx == nil {
				t.Fatalf("fixture %s: %d records, transaction %v", name, len(recs), tx)
			}
			deleted := 0
			for _, d := range recs {
				if d.Deleted {
					deleted++
				}
			}
			if deleted == 0 {
				t.Fatalf("fixture %s has no deferred deletion", name)
			}
			r := New(dir, nil)
			cfg, err := r.LoadConfig()
			if err != nil || cfg.Version != V1 {
				t.Fatalf("loadPool of a v1 root = %+v, %v", cfg, err)
			}
			if err := r.Migrate(cfg); err != nil {
				t.Fatal(err)
			}
			r.Close()
			assertMigrated(t, dir, recs, tx, cfg)
		})
	}
	t.Run("a version 1 root with a corrupt record is refused naming it and left as it was", func(t *testing.T) {
		dir := copyFixture(t, "v1-loop")
		bad := filepath.Join(dir, devicesDirName, "image-2.json")
		if err := os.WriteFile(bad, []byte(`{"version":1,"id":"image-2","dev`), 0o600); err != nil {
			t.Fatal(err)
		}
		before := fileContents(t, dir)
		r := New(dir, nil)
		cfg, err := r.LoadConfig()
		if err != nil {
			t.Fatal(err)
		}
		err = r.Migrate(cfg)
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), bad) {
			t.Fatalf("migrate = %v, want ErrCorrupt naming %s", err, bad)
		}
		if after := fileContents(t, dir); !reflect.DeepEqual(after, before) {
			t.Fatalf("a refused migration changed files: %v", keysOf(after))
		}
	})
}

func keysOf(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// The fixtures' JSON is the v1 format the documentation describes; a
// field renamed by mistake in Device would lose data silently.
func TestTheFixturesDecodeWithoutUnknownFields(t *testing.T) {
	for _, name := range v1Fixtures {
		dir := filepath.Join("testdata", name, "devicemapper", devicesDirName)
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
			dec := json.NewDecoder(strings.NewReader(string(b)))
			dec.DisallowUnknownFields()
			var d Device
			if err := dec.Decode(&d); err != nil {
				t.Fatalf("%s/%s: %v", name, e.Name(), err)
			}
		}
	}
}

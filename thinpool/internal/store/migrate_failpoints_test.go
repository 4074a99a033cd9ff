//go:build failpoints

package store

import (
	"reflect"
	"testing"

	"github.com/thinctl/thinctl/internal/failpoint"
)

// A crash at each step of the migration leaves the version 1 root as it
// was (byte for byte) or a complete version 3 root, and the next attempt
// (Open) finishes the job. Run with go test -tags failpoints ./thinpool/...
func TestAMigrationInterruptedAtEachStepLeavesV1IntactOrV2Complete(t *testing.T) {
	t.Cleanup(failpoint.Disable)
	for _, point := range []string{failpoint.MigrateAfterJrnl, failpoint.MigrateAfterSnap, failpoint.MigrateAfterPool} {
		for _, name := range v1Fixtures {
			t.Run(name+" crashed at "+point, func(t *testing.T) {
				dir := copyFixture(t, name)
				recs, tx := v1State(t, dir)
				v1Files := fileContents(t, dir)
				r := New(dir, nil)
				cfg, err := r.LoadConfig()
				if err != nil {
					t.Fatal(err)
				}
				if err := failpoint.Enable(point + "=panic"); err != nil {
					t.Fatal(err)
				}
				func() {
					defer func() { _ = recover() }()
					_ = r.Migrate(cfg)
					t.Fatal("the migration did not stop at " + point)
				}()
				failpoint.Disable()
				r.Close()
				after := fileContents(t, dir)
				if point != failpoint.MigrateAfterPool {
					// Version 1 intact: every v1 file as it was (the new
					// files beside them are ignored and made again).
					for f, b := range v1Files {
						if after[f] != b {
							t.Fatalf("%s changed before the switch", f)
						}
					}
					gotRecs, gotTx := v1State(t, dir)
					if !reflect.DeepEqual(gotRecs, recs) || !reflect.DeepEqual(gotTx, tx) {
						t.Fatal("the v1 records read differently after the crash")
					}
					r = New(dir, nil)
					cfg, err := r.LoadConfig()
					if err != nil || cfg.Version != V1 {
						t.Fatalf("pool.json after the crash: version %d, %v; want 1", cfg.Version, err)
					}
					if err := r.Migrate(cfg); err != nil {
						t.Fatal(err)
					}
					r.Close()
				}
				assertMigrated(t, dir, recs, tx, cfg)
			})
		}
	}
}

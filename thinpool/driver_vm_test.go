//go:build vm

package thinpool

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/thinctl/thinctl/driver"
	"github.com/thinctl/thinctl/driver/drivertest"
	"github.com/thinctl/thinctl/internal/testenv"
)

func TestDriverConformance(t *testing.T) {
	testenv.RequireDeviceMapper(t)
	if err := (Backend{}).Probe(t.TempDir()); err != nil {
		t.Fatalf("Probe on a kernel with dm-thin-pool: %v", err)
	}
	cfg := drivertest.Config{ChainLength: 24, QuotaBytes: int64(256 * MiB)}
	drivertest.RunWithConfig(t, cfg, func(t *testing.T) driver.Driver {
		home := filepath.Join(t.TempDir(), DriverName)
		if (Backend{}).HasLayers(home) {
			t.Fatal("HasLayers on an empty home")
		}
		d, err := (Backend{}).New(home, driver.Options{StorageOpt: map[string]string{
			"dm.loopdatasize": "1G", "dm.loopmetadatasize": "64M", "dm.basesize": "256M"}})
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		if !(Backend{}).HasLayers(home) {
			t.Fatal("HasLayers is false after New")
		}
		t.Cleanup(func() {
			if err := d.Cleanup(); err != nil {
				t.Errorf("Cleanup: %v", err)
			}
			tearDown(t, home)
		})
		return d
	})
}

func TestDriverSelectPicksDevicemapperWhereItHoldsLayers(t *testing.T) {
	testenv.RequireDeviceMapper(t)
	root := t.TempDir()
	home := filepath.Join(root, DriverName)
	p, err := Init(context.Background(), home, smallOptions())
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	t.Cleanup(func() { tearDown(t, home) })
	d, choice, err := driver.Select(root, "auto", driver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Cleanup()
	if choice.Name != DriverName || d.String() != DriverName {
		t.Fatalf("Select chose %+v", choice)
	}
	layers, err := d.(driver.Lister).List()
	if err != nil || len(layers) != 0 {
		t.Fatalf("List = %v, %v", layers, err)
	}
}

package devicemapper_test

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/thinctl/thinctl/driver"
	"github.com/thinctl/thinctl/driver/devicemapper"
	"github.com/thinctl/thinctl/fs"
	_ "github.com/thinctl/thinctl/overlayfallback/aufs"
	_ "github.com/thinctl/thinctl/overlayfallback/overlay2"
	"github.com/thinctl/thinctl/thinpool"
)

func TestStorageOptionsMapToPoolOptions(t *testing.T) {
	tests := []struct {
		name    string
		in      map[string]string
		want    thinpool.Options
		wantErr string
	}{
		{"no options take the engine's defaults", nil, thinpool.Options{}, ""},
		{"Docker's size names, in the units grammar",
			map[string]string{"dm.loopdatasize": "2G", "dm.loopmetadatasize": "64M", "dm.blocksize": "128K", "dm.basesize": "512MiB"},
			thinpool.Options{DataSize: 2 << 30, MetadataSize: 64 << 20, BlockSize: 128 << 10, BaseSize: 512 << 20}, ""},
		{"size is the base size too", map[string]string{"size": "1G"}, thinpool.Options{BaseSize: 1 << 30}, ""},
		{"filesystem, mkfs arguments one per line, mount options comma separated",
			map[string]string{"dm.fs": "xfs", "dm.mkfsarg": "-m\nreflink=0", "dm.mountopt": "noatime,nodiratime"},
			thinpool.Options{Filesystem: fs.XFS, MkfsArgs: []string{"-m", "reflink=0"}, MountOptions: []string{"noatime", "nodiratime"}}, ""},
		{"a minimum free space in percent", map[string]string{"dm.min_free_space": "5%"}, thinpool.Options{MinFreeSpace: 5}, ""},
		{"a zero minimum turns the check off, as in Docker", map[string]string{"dm.min_free_space": "0%"}, thinpool.Options{NoMinFreeSpace: true}, ""},
		{"devices and an external pool", map[string]string{"dm.datadev": "/dev/sdb", "dm.metadatadev": "/dev/sdc", "dm.thinpooldev": "/dev/mapper/tp"},
			thinpool.Options{DataDevice: "/dev/sdb", MetadataDevice: "/dev/sdc", ThinPoolDevice: "tp"}, ""},
		{"blkdiscard=false turns discards off", map[string]string{"dm.blkdiscard": "false"}, thinpool.Options{NoDiscard: true}, ""},
		{"a fraction is refused with the grammar's advice", map[string]string{"dm.basesize": "1.5G"}, thinpool.Options{}, `dm.basesize=1.5G: invalid size "1.5G": fractions`},
		{"an unknown option is refused by name", map[string]string{"dm.frobnicate": "1"}, thinpool.Options{}, `unknown devicemapper option "dm.frobnicate"`},
		{"an unknown filesystem is refused", map[string]string{"dm.fs": "btrfs"}, thinpool.Options{}, "dm.fs=btrfs"},
		{"a minimum of 100% is refused", map[string]string{"dm.min_free_space": "100"}, thinpool.Options{}, "below 100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := devicemapper.OptionsFromStorageOpt(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, driver.ErrInvalidArgument) {
					t.Fatalf("error %v, want ErrInvalidArgument saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("= %+v, %v\nwant %+v", got, err, tt.want)
			}
		})
	}
}

// TestChoosingCreatesNothing asks every registered backend about a fresh
// root, by auto and by name: the root stays empty.
func TestChoosingCreatesNothing(t *testing.T) {
	root := t.TempDir()
	for _, name := range append([]string{"auto"}, driver.Backends()...) {
		ch, err := driver.Choose(root, name)
		if err != nil {
			t.Logf("Choose(%s): %v", name, err)
			continue
		}
		if ch.Initialized {
			t.Errorf("Choose(%s) on an empty root says it is initialised", name)
		}
	}
	if ents, err := os.ReadDir(root); err != nil || len(ents) != 0 {
		t.Fatalf("choosing left %v (%v) under the root", ents, err)
	}
}

package dockerdm

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/thinctl/thinctl/internal/testenv"
)

func TestReadPoolReadsAPoolThatIsDownFromItsMetadataFileWithoutWriting(t *testing.T) {
	if _, err := os.Stat("/dev/mapper/control"); err == nil {
		t.Skip("this host has device-mapper; the VM scenario (tests/docker) covers live pools")
	}
	restore := testenv.RequireTool(t, "thin_restore")
	testenv.RequireTool(t, "thin_dump")
	root, _ := testStore(t)
	meta := filepath.Join(root, "devicemapper/devicemapper/metadata")
	if err := os.Truncate(meta, 8<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(restore, "-i", "testdata/pool.xml", "-o", meta).CombinedOutput(); err != nil {
		t.Fatalf("thin_restore: %v: %s", err, out)
	}
	s, err := Open(root, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	before := snapshotTree(t, root)
	v, err := ReadPool(t.Context(), s, nil)
	if err != nil {
		t.Fatal(err)
	}
	if after := snapshotTree(t, root); after != before {
		t.Fatal("ReadPool changed the store")
	}
	want := []ThinDevice{{1, 3, 0}, {2, 4, 1}, {5, 1, 4}}
	if v.Active || !v.Compared || v.TransactionID != 7 || v.DataBlocks != 1000 || v.DataUsed != 5 || !reflect.DeepEqual(v.Devices, want) {
		t.Errorf("pool view %+v", v)
	}
	r := Compare(s, v)
	if len(r.Disagreements) == 0 {
		t.Error("a pool with other devices than the records agrees with them")
	}
}

func TestReadPoolRefusesGarbageMetadataWithOneLine(t *testing.T) {
	if _, err := os.Stat("/dev/mapper/control"); err == nil {
		t.Skip("this host has device-mapper")
	}
	root, _ := testStore(t)
	meta := filepath.Join(root, "devicemapper/devicemapper/metadata")
	os.WriteFile(meta, make([]byte, 8192), 0o600)
	s, err := Open(root, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = ReadPool(t.Context(), s, nil)
	if err == nil || err.Error() != "pool metadata "+meta+": superblock at block 0: magic 0, want 27022010: not thin-pool metadata" {
		t.Errorf("ReadPool of zeros: %v", err)
	}
}

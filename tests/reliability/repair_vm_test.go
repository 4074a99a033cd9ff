//go:build vm

package reliability

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// damagedMetadata takes the pool down, breaks the checksum of the block
// holding the data space map's reference count tree (thin_check rejects
// it; thin_repair rebuilds the space maps from the intact mapping trees)
// and brings the pool up again, for the pool repair steps.
func damagedMetadata(t *testing.T, r *rig) {
	t.Helper()
	for _, id := range []string{"k1", "k2"} {
		r.run("unmount", id)
	}
	r.must("pool", "down")
	cfg, err := readPoolJSON(r.root)
	if err != nil {
		t.Fatal(err)
	}
	meta := filepath.Join(r.root, "devicemapper", cfg.MetadataFile)
	f, err := os.OpenFile(meta, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	sb := make([]byte, 4096)
	if _, err := f.ReadAt(sb, 0); err != nil {
		t.Fatal(err)
	}
	// The superblock's data_space_map_root is at 64: nr_blocks,
	// nr_allocated, bitmap_root, ref_count_root (little-endian u64s).
	blk := binary.LittleEndian.Uint64(sb[64+24:])
	if _, err := f.WriteAt(bytes.Repeat([]byte{0xa5}, 64), int64(blk)*4096+64); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if out, err := exec.Command("thin_check", meta).CombinedOutput(); err == nil {
		t.Fatalf("thin_check passes the damaged metadata; the step proves nothing\n%s", out)
	}
	r.must("pool", "up")
}

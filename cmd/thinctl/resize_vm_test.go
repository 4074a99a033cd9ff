//go:build vm

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestResizeGrowsAMountedDeviceAndItsFilesystemAndRefusesAShrink(t *testing.T) {
	o := newOperator(t)
	o.must("pool", "init", "--data-size", "1G", "--metadata-size", "32M", "--base-size", "64M")
	o.must("create", "web")
	mp := strings.TrimSpace(o.must("mount", "web"))
	if err := os.WriteFile(filepath.Join(mp, "kept"), []byte("kept\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := o.must("resize", "web", "--size", "256M"); !strings.HasPrefix(out, "Resized web to ") {
		t.Fatalf("resize printed %q", out)
	}
	if d := o.info("web"); d.SizeBytes != 256<<20 {
		t.Fatalf("info after the resize: %d bytes, want %d", d.SizeBytes, 256<<20)
	}
	// The filesystem grew while mounted.
	total, _, err := statfs(mp)
	if err != nil || total < 200<<20 {
		t.Fatalf("the mounted filesystem has %d bytes after the resize (%v)", total, err)
	}
	if b, err := os.ReadFile(filepath.Join(mp, "kept")); err != nil || string(b) != "kept\n" {
		t.Fatalf("the file after the resize: %q %v", b, err)
	}
	o.fails(1, "thin devices only grow", "resize", "web", "--size", "128M")
	o.fails(2, "give the new size with --size", "resize", "web")
	if d := o.info("web"); d.SizeBytes != 256<<20 {
		t.Fatalf("info after the refusals: %d bytes", d.SizeBytes)
	}
}

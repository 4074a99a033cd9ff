//go:build vm

package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"path"
	"testing"
	"time"
)

// entry is one file of a test image layer.
type entry struct {
	name     string // relative, no leading slash
	typ      byte   // tar.TypeReg, TypeDir, TypeSymlink, TypeLink
	mode     int64
	data     []byte
	linkname string
}

// blob is one content-addressed file of the OCI layout.
type blob struct {
	mediaType string
	data      []byte
}

func (b blob) digest() string { return fmt.Sprintf("sha256:%x", sha256.Sum256(b.data)) }

func (b blob) descriptor() map[string]any {
	return map[string]any{"mediaType": b.mediaType, "digest": b.digest(), "size": len(b.data)}
}

// layerTar writes entries as an uncompressed layer tar.
func layerTar(t *testing.T, entries []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, ModTime: mtime, Linkname: e.linkname, Format: tar.FormatPAX}
		if e.typ == tar.TypeReg {
			h.Size = int64(len(e.data))
		}
		if e.typ == tar.TypeDir {
			h.Name += "/"
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			if _, err := tw.Write(e.data); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// ociImage builds an image's blobs from layers (uncompressed OCI layer
// tars) and the image config's "config" object (Entrypoint, Env...): the
// layers, the config and last the manifest. It also returns the image's top
// chain id (the name of its topmost committed snapshot).
func ociImage(t *testing.T, layers [][]entry, imgConfig map[string]any) ([]blob, string) {
	t.Helper()
	var blobs []blob
	var layerDescs []map[string]any
	var diffIDs []string
	for _, l := range layers {
		b := blob{mediaType: "application/vnd.oci.image.layer.v1.tar", data: layerTar(t, l)}
		blobs = append(blobs, b)
		layerDescs = append(layerDescs, b.descriptor())
		diffIDs = append(diffIDs, b.digest())
	}
	config := blob{mediaType: "application/vnd.oci.image.config.v1+json", data: mustJSON(t, map[string]any{
		"architecture": "amd64", "os": "linux", "config": imgConfig,
		"rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs},
	})}
	manifest := blob{mediaType: "application/vnd.oci.image.manifest.v1+json", data: mustJSON(t, map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": config.descriptor(), "layers": layerDescs,
	})}
	chain := diffIDs[0]
	for _, d := range diffIDs[1:] {
		chain = fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(chain+" "+d)))
	}
	return append(blobs, config, manifest), chain
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writeImageArchive writes an OCI image layout tar named ref (for
// `ctr images import`) with the given layers to file and returns the
// image's top chain id (the name of its topmost committed snapshot).
func writeImageArchive(t *testing.T, file, ref string, layers [][]entry) string {
	t.Helper()
	blobs, chain := ociImage(t, layers, map[string]any{})
	md := blobs[len(blobs)-1].descriptor()
	md["platform"] = map[string]any{"architecture": "amd64", "os": "linux"}
	md["annotations"] = map[string]any{"io.containerd.image.name": ref, "org.opencontainers.image.ref.name": "latest"}
	index := mustJSON(t, map[string]any{"schemaVersion": 2, "manifests": []any{md}})

	var files []entry
	files = append(files, entry{name: "oci-layout", typ: tar.TypeReg, mode: 0o644, data: []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		entry{name: "index.json", typ: tar.TypeReg, mode: 0o644, data: index},
		entry{name: "blobs", typ: tar.TypeDir, mode: 0o755}, entry{name: "blobs/sha256", typ: tar.TypeDir, mode: 0o755})
	for _, b := range blobs {
		files = append(files, entry{name: "blobs/sha256/" + b.digest()[len("sha256:"):], typ: tar.TypeReg, mode: 0o644, data: b.data})
	}
	if err := os.WriteFile(file, layerTar(t, files), 0o644); err != nil {
		t.Fatal(err)
	}
	return chain
}

// randomBytes returns n bytes from a seeded generator.
func randomBytes(seed int64, n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

// want is what a path must be in the mounted image.
type want struct {
	typ      byte // tar.TypeReg, TypeDir, TypeSymlink
	mode     os.FileMode
	data     []byte
	linkname string
	sameAs   string // a hard link: same inode as this path
}

// featureImage is the image of the main scenario: three layers with a
// whiteout, an opaque directory, a hard link, a symbolic link and a 20 MB
// file, and the tree containerd must produce from them.
func featureImage() ([][]entry, map[string]want) {
	big := randomBytes(20, 20<<20)
	l1 := []entry{
		{name: "etc", typ: tar.TypeDir, mode: 0o755},
		{name: "etc/hello", typ: tar.TypeReg, mode: 0o644, data: []byte("hello from layer 1\n")},
		{name: "data", typ: tar.TypeDir, mode: 0o755},
		{name: "data/big", typ: tar.TypeReg, mode: 0o600, data: big},
		{name: "gone", typ: tar.TypeDir, mode: 0o755},
		{name: "gone/x", typ: tar.TypeReg, mode: 0o644, data: []byte("deleted by layer 2\n")},
		{name: "gone/y", typ: tar.TypeReg, mode: 0o644, data: []byte("kept\n")},
		{name: "opq", typ: tar.TypeDir, mode: 0o755},
		{name: "opq/old1", typ: tar.TypeReg, mode: 0o644, data: []byte("hidden by the opaque dir\n")},
		{name: "opq/sub", typ: tar.TypeDir, mode: 0o755},
		{name: "opq/sub/old2", typ: tar.TypeReg, mode: 0o644, data: []byte("hidden too\n")},
	}
	l2 := []entry{
		{name: "gone", typ: tar.TypeDir, mode: 0o755},
		{name: "gone/.wh.x", typ: tar.TypeReg, mode: 0o644},
		{name: "opq", typ: tar.TypeDir, mode: 0o755},
		{name: "opq/.wh..wh..opq", typ: tar.TypeReg, mode: 0o644},
		{name: "opq/new", typ: tar.TypeReg, mode: 0o644, data: []byte("only me in opq\n")},
		{name: "l2", typ: tar.TypeDir, mode: 0o750},
		{name: "l2/target", typ: tar.TypeReg, mode: 0o640, data: []byte("two names, one inode\n")},
		{name: "l2/hardlink", typ: tar.TypeLink, mode: 0o640, linkname: "l2/target"}, // a link entry carries its file's mode, as tar writes it
	}
	l3 := []entry{
		{name: "etc", typ: tar.TypeDir, mode: 0o755},
		{name: "etc/hello", typ: tar.TypeReg, mode: 0o644, data: []byte("hello from layer 3\n")},
		{name: "etc/link", typ: tar.TypeSymlink, linkname: "hello"},
		{name: "bin", typ: tar.TypeDir, mode: 0o755},
		{name: "bin/tool", typ: tar.TypeReg, mode: 0o755, data: []byte("#!/bin/sh\necho tool\n")},
	}
	tree := map[string]want{
		"etc":          {typ: tar.TypeDir, mode: 0o755},
		"etc/hello":    {typ: tar.TypeReg, mode: 0o644, data: []byte("hello from layer 3\n")},
		"etc/link":     {typ: tar.TypeSymlink, linkname: "hello"},
		"data":         {typ: tar.TypeDir, mode: 0o755},
		"data/big":     {typ: tar.TypeReg, mode: 0o600, data: big},
		"gone":         {typ: tar.TypeDir, mode: 0o755},
		"gone/y":       {typ: tar.TypeReg, mode: 0o644, data: []byte("kept\n")},
		"opq":          {typ: tar.TypeDir, mode: 0o755},
		"opq/new":      {typ: tar.TypeReg, mode: 0o644, data: []byte("only me in opq\n")},
		"l2":           {typ: tar.TypeDir, mode: 0o750},
		"l2/target":    {typ: tar.TypeReg, mode: 0o640, data: []byte("two names, one inode\n")},
		"l2/hardlink":  {typ: tar.TypeReg, mode: 0o640, data: []byte("two names, one inode\n"), sameAs: "l2/target"},
		"bin":          {typ: tar.TypeDir, mode: 0o755},
		"bin/tool":     {typ: tar.TypeReg, mode: 0o755, data: []byte("#!/bin/sh\necho tool\n")},
		path.Join("."): {typ: tar.TypeDir, mode: 0o755},
	}
	return [][]entry{l1, l2, l3}, tree
}

// manyLayerImage is an image of n layers of size bytes each (for the import
// the snapshotter is killed in).
func manyLayerImage(n, size int) [][]entry {
	var layers [][]entry
	for i := range n {
		layers = append(layers, []entry{
			{name: "layers", typ: tar.TypeDir, mode: 0o755},
			{name: fmt.Sprintf("layers/%02d", i), typ: tar.TypeReg, mode: 0o644, data: randomBytes(int64(100+i), size)},
		})
	}
	return layers
}

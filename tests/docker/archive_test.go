//go:build vm

package docker

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math/rand"
	"testing"
	"time"
)

// entry is one member of a layer tar.
type entry struct {
	name     string
	typ      byte
	mode     int64
	body     []byte
	link     string
	xattrs   map[string]string
	uid, gid int
}

func dir(name string) entry { return entry{name: name, typ: tar.TypeDir, mode: 0o755} }
func file(name, body string) entry {
	return entry{name: name, typ: tar.TypeReg, mode: 0o644, body: []byte(body)}
}
func hardlink(name, target string) entry { return entry{name: name, typ: tar.TypeLink, link: target} }
func symlink(name, target string) entry {
	return entry{name: name, typ: tar.TypeSymlink, link: target, mode: 0o777}
}

// pattern is n bytes of a fixed pseudo-random sequence (seed picks it).
func pattern(n int, seed int64) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

// layerTar writes entries as a tar with fixed times.
func layerTar(t *testing.T, es []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mt := time.Unix(1700000000, 0)
	for _, e := range es {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, ModTime: mt, Uid: e.uid, Gid: e.gid, Format: tar.FormatPAX}
		if e.typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if len(e.xattrs) > 0 {
			h.PAXRecords = map[string]string{}
			for k, v := range e.xattrs {
				h.PAXRecords["SCHILY.xattr."+k] = v
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			if _, err := tw.Write(e.body); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// image is one image of a docker save archive.
type image struct {
	tag    string
	layers [][]byte
}

// saveArchive builds a docker-save-format archive (manifest.json, the
// configurations, layer tars) that docker load accepts offline.
func saveArchive(t *testing.T, imgs []image) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	put := func(name string, b []byte) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), ModTime: time.Unix(1700000000, 0)}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	type manifest struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	var ms []manifest
	written := map[string]bool{}
	for i, img := range imgs {
		var diffIDs, names []string
		for _, l := range img.layers {
			d := digest(l)
			diffIDs = append(diffIDs, d)
			name := d[7:] + "/layer.tar"
			names = append(names, name)
			if !written[name] {
				put(name, l)
				written[name] = true
			}
		}
		hist := make([]map[string]string, len(img.layers))
		for j := range hist {
			hist[j] = map[string]string{"created_by": "thinctl test layer"}
		}
		cfg, _ := json.Marshal(map[string]any{
			"architecture": "amd64", "os": "linux",
			"created": time.Unix(1700000000+int64(i), 0).UTC().Format(time.RFC3339),
			"config":  map[string]any{"Cmd": []string{"/bin/true"}},
			"rootfs":  map[string]any{"type": "layers", "diff_ids": diffIDs},
			"history": hist,
		})
		cname := digest(cfg)[7:] + ".json"
		put(cname, cfg)
		ms = append(ms, manifest{Config: cname, RepoTags: []string{img.tag}, Layers: names})
	}
	mb, _ := json.Marshal(ms)
	put("manifest.json", mb)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

package driver

import (
	"archive/tar"
	"bytes"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
)

func FuzzParseWhiteout(f *testing.F) {
	for _, s := range []string{"a/.wh.b", ".wh..wh..opq", "x/.wh..wh..opq", ".wh..wh.plnk/1", "a/.wh.", "./.wh.x", "a//.wh.b/", "plain", "x/.wh..wh.foo.1/.wh.bar"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		kind, target, err := ParseWhiteout(name)
		if err != nil {
			return
		}
		if (kind == Whiteout || kind == OpaqueMarker) && UnderMeta(target) {
			t.Fatalf("ParseWhiteout(%q) = %v of %q, inside reserved metadata", name, kind, target)
		}
		switch kind {
		case Whiteout:
			if target == "" || strings.HasPrefix(target, "/") || path.Clean(target) != target {
				t.Fatalf("ParseWhiteout(%q) target %q is not a clean relative path", name, target)
			}
			if k2, t2, err := ParseWhiteout(WhiteoutName(target)); err != nil || k2 != Whiteout || t2 != target {
				t.Fatalf("round trip of %q: %v %q %v", target, k2, t2, err)
			}
		case OpaqueMarker:
			if target == "" || path.Clean(target) != target {
				t.Fatalf("ParseWhiteout(%q) opaque dir %q is not clean", name, target)
			}
		case NotWhiteout, WhiteoutMeta:
			if target != "" {
				t.Fatalf("ParseWhiteout(%q) = %v with target %q", name, kind, target)
			}
		}
	})
}

func FuzzCleanEntryName(f *testing.F) {
	for _, s := range []string{"a/b", "../x", "/abs", "./", "a/./b/../c", "..", "a\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		c, err := CleanEntryName(name)
		if err != nil {
			return
		}
		if c != "." && (strings.HasPrefix(c, "/") || c == ".." || strings.HasPrefix(c, "../") || path.Clean(c) != c) {
			t.Fatalf("CleanEntryName(%q) = %q escapes or is not clean", name, c)
		}
	})
}

// FuzzApplyTar feeds arbitrary streams to ApplyTar and checks that nothing
// is ever written beside the target directory.
func FuzzApplyTar(f *testing.F) {
	seed := func(hdrs ...tar.Header) []byte {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, h := range hdrs {
			h := h
			body := []byte("data")
			if h.Typeflag == tar.TypeReg {
				h.Size = int64(len(body))
			}
			tw.WriteHeader(&h)
			if h.Typeflag == tar.TypeReg {
				tw.Write(body)
			}
		}
		tw.Close()
		return buf.Bytes()
	}
	f.Add(seed(tar.Header{Name: "a/b", Typeflag: tar.TypeReg, Mode: 0o644}))
	f.Add(seed(tar.Header{Name: "l", Typeflag: tar.TypeSymlink, Linkname: ".."}, tar.Header{Name: "l/x", Typeflag: tar.TypeReg}))
	f.Add(seed(tar.Header{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755}, tar.Header{Name: "d/.wh..wh..opq", Typeflag: tar.TypeReg}))
	f.Add(seed(tar.Header{Name: "h", Typeflag: tar.TypeLink, Linkname: "../outside"}))
	f.Add(seed(tar.Header{Name: ".wh...", Typeflag: tar.TypeReg}))
	f.Fuzz(func(t *testing.T, stream []byte) {
		// A sparse entry may legitimately declare terabytes of holes that
		// tar.Reader expands into zeros; keep the fuzzer to small files.
		tr := tar.NewReader(bytes.NewReader(stream))
		for {
			h, err := tr.Next()
			if err != nil {
				break
			}
			if h.Size > 1<<20 {
				return
			}
		}
		outer, err := os.MkdirTemp("", "fuzz-apply-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(outer)
		root := filepath.Join(outer, "root")
		if err := os.Mkdir(root, 0o755); err != nil {
			t.Fatal(err)
		}
		ApplyTar(root, bytes.NewReader(stream), nil)
		ents, err := os.ReadDir(outer)
		if err != nil {
			t.Fatal(err)
		}
		if len(ents) != 1 || ents[0].Name() != "root" {
			names := []string{}
			for _, e := range ents {
				names = append(names, e.Name())
			}
			t.Fatalf("ApplyTar wrote outside its root: %v", names)
		}
	})
}

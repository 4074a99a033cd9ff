package driver

import (
	"path"
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

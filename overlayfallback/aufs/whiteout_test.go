package aufs

import "testing"

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		base string
		want entryKind
	}{
		{"an ordinary name is plain", "hosts", entryPlain},
		{"a dot file is plain", ".bashrc", entryPlain},
		{"a .wh. name is a whiteout", ".wh.zegrep", entryWhiteout},
		{"a whiteout of a dot file is a whiteout", ".wh..bashrc", entryWhiteout},
		{"the opaque marker is opaque", ".wh..wh..opq", entryOpaque},
		{"the whiteout base is aufs metadata", ".wh..wh.aufs", entryMeta},
		{"the pseudo-link directory is aufs metadata", ".wh..wh.plnk", entryMeta},
		{"the orphan directory is aufs metadata", ".wh..wh.orph", entryMeta},
		{"any other .wh..wh. name is aufs metadata", ".wh..wh.future", entryMeta},
		{"a bare .wh. hides nothing and is metadata", ".wh.", entryMeta},
		{"a whiteout of dot-dot hides nothing and is metadata", ".wh...", entryMeta},
		{"a whiteout of dot hides nothing and is metadata", ".wh..", entryMeta},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := classify(tt.base); got != tt.want {
				t.Fatalf("classify(%q) = %v, want %v", tt.base, got, tt.want)
			}
		})
	}
}

func TestWhiteoutNamesRoundTrip(t *testing.T) {
	for _, name := range []string{"a", ".hidden", "with space"} {
		wh := whiteoutName(name)
		if classify(wh) != entryWhiteout || whiteoutTarget(wh) != name {
			t.Fatalf("whiteout of %q is %q (kind %v, target %q)", name, wh, classify(wh), whiteoutTarget(wh))
		}
	}
}

package overlay2

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/driver"
)

func TestNewLinkNameIs26Base32CharactersAndUnique(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		l, err := newLinkName()
		if err != nil {
			t.Fatal(err)
		}
		if !validLinkName(l) {
			t.Fatalf("link name %q is not 26 characters of A-Z2-7", l)
		}
		if seen[l] {
			t.Fatalf("link name %q generated twice", l)
		}
		seen[l] = true
	}
}

const (
	linkA = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	linkB = "234567ABCDEFGHIJKLMNOPQRST"
	linkC = "ZZZZZZZZZZZZZZZZZZZZZZZZZ2"
)

func TestFormatLower(t *testing.T) {
	cases := []struct {
		name        string
		parent      string
		parentLower []string
		want        string
	}{
		{"a child of a parentless layer names only its parent", linkA, nil, "l/" + linkA},
		{"a deeper child puts its parent first, then the parent's chain", linkA, []string{linkB, linkC}, "l/" + linkA + ":l/" + linkB + ":l/" + linkC},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := FormatLower(c.parent, c.parentLower)
			if got != c.want {
				t.Errorf("FormatLower = %q, want %q", got, c.want)
			}
			back, err := ParseLower(got)
			if err != nil || strings.Join(back, ",") != strings.Join(append([]string{c.parent}, c.parentLower...), ",") {
				t.Errorf("ParseLower(FormatLower) = %v, %v", back, err)
			}
		})
	}
}

func TestParseLower(t *testing.T) {
	cases := []struct {
		name    string
		in      string
		want    string
		wantErr string
	}{
		{"one entry", "l/" + linkA, linkA, ""},
		{"two entries with a trailing newline", "l/" + linkA + ":l/" + linkB + "\n", linkA + "," + linkB, ""},
		{"an empty file is an error", "", "", "empty"},
		{"an entry without l/ is an error", linkA, "", "entry 1"},
		{"a short link name is an error", "l/" + linkA + ":l/ABC", "", "entry 2"},
		{"an absolute path is an error", "/var/lib/l/" + linkA, "", "entry 1"},
		{"an empty entry is an error", "l/" + linkA + "::l/" + linkB, "", "entry 2"},
		{"lowercase is an error", "l/" + strings.ToLower(linkA), "", "entry 1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseLower(c.in)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("ParseLower(%q) = %v, %v; want an error mentioning %q", c.in, got, err, c.wantErr)
				}
				return
			}
			if err != nil || strings.Join(got, ",") != c.want {
				t.Errorf("ParseLower(%q) = %v, %v; want %s", c.in, got, err, c.want)
			}
		})
	}
}

func FuzzParseLower(f *testing.F) {
	f.Add("l/" + linkA)
	f.Add("l/" + linkA + ":l/" + linkB + "\n")
	f.Add("l/x:l/y")
	f.Add("::")
	f.Fuzz(func(t *testing.T, s string) {
		links, err := ParseLower(s)
		if err != nil {
			return
		}
		if len(links) == 0 {
			t.Fatalf("ParseLower(%q) accepted an empty chain", s)
		}
		for _, l := range links {
			if !validLinkName(l) {
				t.Fatalf("ParseLower(%q) returned invalid link %q", s, l)
			}
		}
		if FormatLower(links[0], links[1:]) != strings.TrimSuffix(s, "\n") {
			t.Fatalf("ParseLower(%q) does not round-trip", s)
		}
	})
}

func TestValidID(t *testing.T) {
	for _, id := range []string{"", ".", "..", "l", "a/b", "a:b", "a,b", ".hidden", backingDevName, "x\x00"} {
		if validID(id) == nil {
			t.Errorf("validID(%q) accepted it", id)
		}
	}
	for _, id := range []string{"abc", "3f2a-init", strings.Repeat("f", 64)} {
		if err := validID(id); err != nil {
			t.Errorf("validID(%q) = %v", id, err)
		}
	}
}

// chain returns n distinct link names.
func chain(n int) []string {
	out := make([]string, n)
	for i := range out {
		l, _ := newLinkName()
		out[i] = l
	}
	return out
}

func TestMountDataFitsInAPage(t *testing.T) {
	home := "/var/lib/thinctl/overlay2"
	id := strings.Repeat("e", 64)
	cases := []struct {
		name         string
		layers       int
		wantRelative bool
		wantErr      bool
	}{
		{"a short chain uses absolute paths", 3, false, false},
		{"a 128-layer chain falls back to paths relative to home", 128, true, false},
		{"a 135-layer chain still fits with relative paths", 135, true, false},
		{"a chain of 200 layers does not fit and says so", 200, false, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			spec, err := buildMountData(home, id, chain(c.layers), []string{"index=off"})
			if c.wantErr {
				if err == nil || !strings.Contains(err.Error(), "200 layers") {
					t.Fatalf("err = %v, want one naming the chain length", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(spec.data)+1 > pageSize {
				t.Errorf("mount data is %d bytes plus NUL, page is %d", len(spec.data), pageSize)
			}
			if (spec.dir != "") != c.wantRelative {
				t.Errorf("relative = %v (dir %q), want %v", spec.dir != "", spec.dir, c.wantRelative)
			}
			if c.wantRelative && (spec.dir != home || spec.target != id+"/merged" || strings.Contains(spec.data, home)) {
				t.Errorf("relative spec %+v mentions absolute paths", spec)
			}
			lowerdir := strings.SplitN(strings.TrimPrefix(spec.data, "lowerdir="), ",", 2)[0]
			if n := len(strings.Split(lowerdir, ":")); n != c.layers {
				t.Errorf("mount data names %d lower layers, want %d", n, c.layers)
			}
			if !strings.HasSuffix(spec.data, ",index=off") {
				t.Errorf("mount data %q lost the extra option", spec.data[len(spec.data)-40:])
			}
		})
	}
}

func TestParseDirents(t *testing.T) {
	rec := func(ino uint64, typ uint8, name string) []byte {
		n := direntHeader + len(name) + 1
		n = (n + 7) &^ 7
		b := make([]byte, n)
		binary.LittleEndian.PutUint64(b[0:], ino)
		binary.LittleEndian.PutUint16(b[16:], uint16(n))
		b[18] = typ
		copy(b[direntHeader:], name)
		return b
	}
	good := append(rec(1, unix.DT_DIR, "."), rec(7, unix.DT_REG, "file")...)
	cases := []struct {
		name    string
		buf     []byte
		want    string
		wantErr bool
	}{
		{"two records decode with their types", good, ".:4 file:8", false},
		{"an empty buffer has no records", nil, "", false},
		{"a truncated header is an error", good[:len(good)-30], "", true},
		{"a record length of zero is an error", func() []byte { b := rec(1, 0, "x"); b[16], b[17] = 0, 0; return b }(), "", true},
		{"a record longer than the buffer is an error", func() []byte { b := rec(1, 0, "x"); b[16] = 200; return b }(), "", true},
		{"a name without NUL is an error", func() []byte {
			b := make([]byte, 24)
			binary.LittleEndian.PutUint16(b[16:], 24)
			copy(b[19:], "abcde")
			return b
		}(), "", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ds, err := ParseDirents(c.buf)
			if (err != nil) != c.wantErr {
				t.Fatalf("err = %v", err)
			}
			if c.wantErr {
				return
			}
			var parts []string
			for _, d := range ds {
				parts = append(parts, d.Name+":"+string(rune('0'+d.Type)))
			}
			if got := strings.Join(parts, " "); got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

func FuzzParseDirents(f *testing.F) {
	b := make([]byte, 24)
	binary.LittleEndian.PutUint16(b[16:], 24)
	b[18] = unix.DT_REG
	copy(b[19:], "abc")
	f.Add(b)
	f.Add([]byte{})
	f.Add(make([]byte, 19))
	f.Fuzz(func(t *testing.T, buf []byte) {
		ds, err := ParseDirents(buf)
		if err != nil {
			return
		}
		for _, d := range ds {
			if strings.ContainsRune(d.Name, 0) {
				t.Fatalf("name %q contains NUL", d.Name)
			}
		}
	})
}

func TestReadDirentsSeesRegularFilesOnThisHost(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	ds, err := readDirents(dir)
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]uint8{}
	for _, d := range ds {
		types[d.Name] = d.Type
	}
	fsName, _ := backingFS(dir)
	if types["f"] == unix.DT_UNKNOWN {
		t.Skipf("%s under %s has no d_type", fsName, dir)
	}
	if types["f"] != unix.DT_REG || types["d"] != unix.DT_DIR || types["."] != unix.DT_DIR {
		t.Errorf("types %v, want f regular, d and . directories", types)
	}
	ok, err := checkDType(dir)
	if err != nil || !ok {
		t.Errorf("checkDType(%s on %s) = %v, %v", dir, fsName, ok, err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("checkDType left its probe file behind: %v", ents)
	}
}

func TestNoDTypeErrorGivesTheXfsHint(t *testing.T) {
	err := errNoDType("/var/lib/thinctl/overlay2", "xfs")
	if !strings.Contains(err.Error(), "ftype=1") || !errors.Is(err, driver.ErrNotSupported) {
		t.Errorf("error %q lacks the ftype hint or ErrNotSupported", err)
	}
}

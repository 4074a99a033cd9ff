package dockerdm

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"hash/crc64"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pkg/errors"
)

// countingReader counts what archive/tar consumed.
type countingReader struct {
	r *bytes.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// tarSplitOf splits a tar into tar-split lines the way tar-split does: the
// bytes archive/tar reads before an entry's content are a segment, the
// content is a file entry with its CRC-64, the rest is a last segment.
func tarSplitOf(t *testing.T, raw []byte) []byte {
	t.Helper()
	cr := &countingReader{r: bytes.NewReader(raw)}
	tr := tar.NewReader(cr)
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	pos, n := int64(0), 0
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		enc.Encode(map[string]any{"type": 2, "payload": raw[pos:cr.n], "position": n})
		n++
		content, _ := io.ReadAll(tr)
		sum := crc64.Checksum(content, crc64.MakeTable(crc64.ISO))
		var crc []byte
		if len(content) > 0 {
			crc = []byte{byte(sum >> 56), byte(sum >> 48), byte(sum >> 40), byte(sum >> 32), byte(sum >> 24), byte(sum >> 16), byte(sum >> 8), byte(sum)}
		}
		enc.Encode(map[string]any{"type": 1, "name": h.Name, "size": len(content), "payload": crc, "position": n})
		n++
		pos = cr.n
	}
	enc.Encode(map[string]any{"type": 2, "payload": raw[pos:], "position": n})
	return out.Bytes()
}

// testLayer returns a layer tar and a tree holding its files.
func testLayer(t *testing.T) ([]byte, string) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mt := time.Unix(1700000000, 0)
	add := func(h *tar.Header, body string) {
		h.ModTime = mt
		h.Size = int64(len(body))
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
	}
	add(&tar.Header{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755}, "")
	add(&tar.Header{Name: "etc/hello", Typeflag: tar.TypeReg, Mode: 0o644, PAXRecords: map[string]string{"SCHILY.xattr.user.a": "b"}}, "hello\n")
	add(&tar.Header{Name: "etc/.wh.gone", Typeflag: tar.TypeReg, Mode: 0o644}, "")
	add(&tar.Header{Name: "etc/link", Typeflag: tar.TypeLink, Linkname: "etc/hello"}, "")
	add(&tar.Header{Name: "big", Typeflag: tar.TypeReg, Mode: 0o600}, strings.Repeat("0123456789", 100000))
	tw.Close()
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/hello"), []byte("hello\n"), 0o644)
	os.WriteFile(filepath.Join(root, "big"), []byte(strings.Repeat("0123456789", 100000)), 0o600)
	return buf.Bytes(), root
}

func TestAssembleTarRebuildsTheLayerByteForByte(t *testing.T) {
	raw, root := testLayer(t)
	var out bytes.Buffer
	n, err := AssembleTar(bytes.NewReader(tarSplitOf(t, raw)), root, &out)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(len(raw)) || !bytes.Equal(out.Bytes(), raw) {
		t.Fatalf("assembled %d bytes, want the original %d", n, len(raw))
	}
}

func TestAssembleTarRefusesContentOtherThanDockerRecorded(t *testing.T) {
	tests := []struct {
		name   string
		change func(t *testing.T, root string, split []byte) []byte
		want   string
	}{
		{"a file whose content changed", func(t *testing.T, root string, split []byte) []byte {
			os.WriteFile(filepath.Join(root, "etc/hello"), []byte("HELLO\n"), 0o644)
			return split
		}, `"etc/hello" differs`},
		{"a file that got shorter", func(t *testing.T, root string, split []byte) []byte {
			os.WriteFile(filepath.Join(root, "big"), []byte("short"), 0o644)
			return split
		}, `has 5 bytes`},
		{"a file that is gone", func(t *testing.T, root string, split []byte) []byte {
			os.Remove(filepath.Join(root, "big"))
			return split
		}, `layer file "big"`},
		{"a file reached through a symlink", func(t *testing.T, root string, split []byte) []byte {
			os.RemoveAll(filepath.Join(root, "etc"))
			os.Symlink("/etc", filepath.Join(root, "etc"))
			return split
		}, "under a symlink"},
		{"a truncated tar-split", func(t *testing.T, root string, split []byte) []byte {
			return split[:len(split)/2]
		}, "tar-split"},
		{"an unknown entry type", func(t *testing.T, root string, split []byte) []byte {
			return append([]byte(`{"type":3,"payload":null}`+"\n"), split...)
		}, "entry type 3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw, root := testLayer(t)
			split := tc.change(t, root, tarSplitOf(t, raw))
			_, err := AssembleTar(bytes.NewReader(split), root, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, os.ErrNotExist) {
				t.Errorf("err %v is neither ErrCorrupt nor a missing file", err)
			}
		})
	}
}

func FuzzReadTarSplit(f *testing.F) {
	f.Add([]byte(`{"type":2,"payload":"AAAA","position":0}` + "\n" + `{"type":1,"name":"a","size":1,"payload":"AAAAAAAAAAA=","position":1}` + "\n"))
	f.Add([]byte(`{"type":1,"name_raw":"/w==","size":0,"payload":null,"position":0}`))
	f.Add([]byte(`{"type":1,"name":"a","size":9223372036854775807,"payload":"AAAAAAAAAAA="}` + "\n" + `{"type":2,"payload":"AA=="}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var sum big.Int
		err := ReadTarSplit(bytes.NewReader(b), func(e TarSplitEntry) error {
			if e.Type == tarSplitFile && e.Size > 0 && len(e.Payload) != 8 {
				t.Fatalf("file entry with a %d-byte checksum", len(e.Payload))
			}
			if e.Size < 0 {
				t.Fatal("negative size")
			}
			n := e.Size
			if e.Type == tarSplitSegment {
				n = int64(len(e.Payload))
			}
			sum.Add(&sum, big.NewInt(n))
			return nil
		})
		// TarSplitSize is the exact total when it fits in an int64, and
		// an error otherwise, never a wrapped-around number.
		n, serr := TarSplitSize(bytes.NewReader(b))
		switch {
		case err != nil && serr == nil:
			t.Fatalf("TarSplitSize accepted what ReadTarSplit refused (%v)", err)
		case err == nil && sum.IsInt64() && (serr != nil || n != sum.Int64()):
			t.Fatalf("TarSplitSize = %d, %v; the entries add up to %s", n, serr, sum.String())
		case err == nil && !sum.IsInt64() && serr == nil:
			t.Fatalf("TarSplitSize = %d for entries adding up to %s", n, sum.String())
		}
	})
}

package dockerdm

import (
	"bufio"
	"bytes"
	"encoding/json"
	"hash/crc64"
	"io"
	"math"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/driver"
	"github.com/thinctl/thinctl/errdefs"
)

// Tar-split entry types (github.com/vbatts/tar-split's storage package):
// a file's content comes from the layer's files, a segment is raw tar
// bytes (headers, padding, the end blocks) kept as they were.
const (
	tarSplitFile    = 1
	tarSplitSegment = 2
)

// TarSplitEntry is one line of a layer's tar-split.json (the
// decompressed tar-split.json.gz Docker keeps beside the layer).
type TarSplitEntry struct {
	Type int
	// Name is a file entry's path in the tar (NameRaw decoded if needed).
	Name string
	// Size is a file entry's content length.
	Size int64
	// Payload is a segment's raw bytes, or a file's CRC-64 (ISO) of its content.
	Payload []byte
}

// ErrTarSplit is returned for a tar-split stream that cannot be read.
var ErrTarSplit = errors.Wrap(ErrCorrupt, "tar-split")

// maxTarSplitLine bounds one JSON line (a segment holds at most a few
// tar headers; Docker's are a few KiB).
const maxTarSplitLine = 16 << 20

// ReadTarSplit calls fn for each entry of a decompressed tar-split stream.
func ReadTarSplit(r io.Reader, fn func(TarSplitEntry) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for n := 1; ; n++ {
		line, err := readLine(br)
		if err == io.EOF && len(line) == 0 {
			return nil
		}
		if err != nil && err != io.EOF {
			return errdefs.Wrapf(ErrTarSplit, err, "line %d: %v", n, err)
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var raw struct {
			Type    int    `json:"type"`
			Name    string `json:"name"`
			NameRaw []byte `json:"name_raw"`
			Size    int64  `json:"size"`
			Payload []byte `json:"payload"`
			Pos     *int   `json:"position"`
		}
		if err := json.Unmarshal(line, &raw); err != nil {
			return errdefs.Wrapf(ErrTarSplit, err, "line %d: %v", n, err)
		}
		e := TarSplitEntry{Type: raw.Type, Name: raw.Name, Size: raw.Size, Payload: raw.Payload}
		if len(raw.NameRaw) > 0 {
			e.Name = string(raw.NameRaw)
		}
		switch raw.Type {
		case tarSplitSegment:
		case tarSplitFile:
			if raw.Size < 0 || (raw.Size > 0 && len(raw.Payload) != 8) {
				return errors.Wrapf(ErrTarSplit, "line %d: file %q with size %d and a %d-byte checksum", n, e.Name, raw.Size, len(raw.Payload))
			}
		default:
			return errors.Wrapf(ErrTarSplit, "line %d: entry type %d", n, raw.Type)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
}

func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > maxTarSplitLine {
			return nil, errors.Errorf("a line longer than %d bytes", maxTarSplitLine)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		return line, err
	}
}

// TarSplitSize returns the bytes AssembleTar would write for a tar-split
// stream (its segments plus its files' sizes) without reading any file.
func TarSplitSize(tarSplit io.Reader) (int64, error) {
	var total int64
	err := ReadTarSplit(tarSplit, func(e TarSplitEntry) error {
		n := e.Size
		if e.Type == tarSplitSegment {
			n = int64(len(e.Payload))
		}
		if total > math.MaxInt64-n {
			return errors.Wrap(ErrTarSplit, "the tar it describes is larger than 2^63 bytes")
		}
		total += n
		return nil
	})
	return total, err
}

// crcTable is tar-split's CRC-64 (ISO) table, made on first use rather
// than at every thinctl start.
var crcTable = sync.OnceValue(func() *crc64.Table { return crc64.MakeTable(crc64.ISO) })

// AssembleTar writes the layer's original tar to w: the segments of the
// tar-split stream as they are, each file's content read from root (the
// layer's tree, e.g. its device mounted read-only, under rootfs/) and
// checked against the CRC-64 Docker recorded. It returns the bytes written.
func AssembleTar(tarSplit io.Reader, root string, w io.Writer) (int64, error) {
	if err := driver.CheckLayerRoot(root); err != nil {
		return 0, err
	}
	var total int64
	buf := make([]byte, 1<<20)
	err := ReadTarSplit(tarSplit, func(e TarSplitEntry) error {
		if e.Type == tarSplitSegment {
			n, err := w.Write(e.Payload)
			total += int64(n)
			return err
		}
		if e.Size == 0 {
			return nil
		}
		p, err := layerPath(root, e.Name)
		if err != nil {
			return err
		}
		// Opened beneath root without following a symlink and only as the
		// regular file it was a moment ago: never a FIFO or a device.
		rel, _ := filepath.Rel(root, p)
		f, err := driver.OpenRegularInRoot(root, rel, nil)
		if err != nil {
			return errors.Wrapf(err, "layer file %q", e.Name)
		}
		defer f.Close()
		h := crc64.New(crcTable())
		n, err := io.CopyBuffer(io.MultiWriter(w, h), io.LimitReader(f, e.Size), buf)
		total += n
		if err != nil {
			return errors.Wrapf(err, "copy layer file %q", e.Name)
		}
		if n != e.Size {
			return errors.Wrapf(ErrCorrupt, "layer file %q has %d bytes, Docker recorded %d", e.Name, n, e.Size)
		}
		if !bytes.Equal(h.Sum(nil), e.Payload) {
			return errors.Wrapf(ErrCorrupt, "layer file %q differs from what Docker recorded (CRC-64)", e.Name)
		}
		return nil
	})
	return total, err
}

// layerPath maps a tar entry name to a path under root, refusing one that
// climbs out or passes through a symlink.
func layerPath(root, name string) (string, error) {
	clean := path.Clean("/" + strings.TrimPrefix(name, "./"))
	if clean == "/" || strings.Contains(name, "\x00") {
		return "", errors.Wrapf(ErrTarSplit, "file entry %q names no file", name)
	}
	p := filepath.Join(root, clean)
	dir := root
	for _, part := range strings.Split(strings.Trim(filepath.Dir(clean), "/"), "/") {
		if part == "" {
			continue
		}
		dir = filepath.Join(dir, part)
		fi, err := os.Lstat(dir)
		if err != nil {
			return "", errors.Wrapf(err, "layer file %q", name)
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			return "", errors.Wrapf(ErrCorrupt, "layer file %q lies under a symlink", name)
		}
	}
	if fi, err := os.Lstat(p); err == nil && !fi.Mode().IsRegular() {
		return "", errors.Wrapf(ErrCorrupt, "layer file %q is not a regular file", name)
	}
	return p, nil
}

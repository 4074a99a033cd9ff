package driver

import (
	"bytes"
	"io"
	"unsafe"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/errdefs"
)

// sparseChunk is the unit copyHoles leaves as a hole when it is all zeros.
const sparseChunk = 4096

// copyBuffer is how much copyHoles reads at a time: large, so that the
// zeros a sparse entry's holes read as go by in few calls.
const copyBuffer = 1 << 20

var zeroChunk [copyBuffer]byte

// copyHoles copies r to the new, empty file open as fd and returns the
// bytes copied. Every sparseChunk-aligned run of zeros is skipped instead
// of written, so a sparse file stays sparse through a tar round trip (tar
// streams carry the zeros, or a sparse map the reader turns into zeros;
// the filesystem gets holes); the file gets its full size with ftruncate.
// The bytes actually written are taken from *free, and a write that would
// take more than is left fails with ErrNoSpace before it is made.
func copyHoles(fd int, r io.Reader, free *int64) (int64, error) {
	buf := make([]byte, copyBuffer)
	var off int64
	for {
		// Fill the buffer; only io.EOF ends the file (a reader's
		// io.ErrUnexpectedEOF is a cut stream and is returned).
		k := 0
		var err error
		for k < len(buf) && err == nil {
			var m int
			m, err = r.Read(buf[k:])
			k += m
		}
		if werr := writeHoles(fd, buf[:k], off, free); werr != nil {
			return off, werr
		}
		off += int64(k)
		if err == io.EOF {
			break
		}
		if err != nil {
			return off, err
		}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return off, err
	}
	if st.Size < off {
		return off, unix.Ftruncate(fd, off)
	}
	return off, nil
}

// writeHoles writes p at off in fd, leaving out every all-zero piece
// between sparseChunk boundaries and writing each run of the others with
// one pwrite.
func writeHoles(fd int, p []byte, off int64, free *int64) error {
	start := -1 // of the pending run of data
	flush := func(end int) error {
		if start < 0 {
			return nil
		}
		run := p[start:end]
		if int64(len(run)) > *free {
			return errors.Wrapf(errdefs.ErrNoSpace, "the layer's filesystem had %d bytes free for this archive, and they are used up", *free)
		}
		at := off + int64(start)
		for len(run) > 0 {
			n, err := unix.Pwrite(fd, run, at)
			if err != nil {
				return err
			}
			run, at = run[n:], at+int64(n)
			*free -= int64(n)
		}
		start = -1
		return nil
	}
	for i := 0; i < len(p); {
		j := i + sparseChunk - int((off+int64(i))%sparseChunk)
		if j > len(p) {
			j = len(p)
		}
		if bytes.Equal(p[i:j], zeroChunk[:j-i]) {
			if err := flush(i); err != nil {
				return err
			}
		} else if start < 0 {
			start = i
		}
		i = j
	}
	return flush(len(p))
}

// futimens sets atime and mtime of the file open as fd.
func futimens(fd int, ts unix.Timespec) error {
	times := [2]unix.Timespec{ts, ts}
	_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&times)), 0, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

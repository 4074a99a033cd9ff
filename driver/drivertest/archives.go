package drivertest

import (
	"archive/tar"
	"bytes"
	"fmt"
	"strings"
	"time"
)

// Entry is one member of an archive Tar builds: Header as tar.Writer
// takes it (Size is set from Body for regular files).
type Entry struct {
	Header tar.Header
	Body   string
}

// archiveTime is the mtime of every entry Tar writes without one.
var archiveTime = time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)

// Tar writes entries as a PAX archive (or in each header's Format). It panics on what tar.Writer
// refuses: the catalogue is fixed, so that is a bug in it.
func Tar(entries ...Entry) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.Header
		if h.Typeflag == tar.TypeXGlobalHeader {
			h = tar.Header{Typeflag: h.Typeflag, PAXRecords: h.PAXRecords, Format: tar.FormatPAX}
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.Body))
		}
		if h.ModTime.IsZero() && h.Typeflag != tar.TypeXGlobalHeader {
			h.ModTime = archiveTime
		}
		if h.Mode == 0 && h.Typeflag != tar.TypeXGlobalHeader {
			h.Mode = 0o755
		}
		if h.Format == tar.FormatUnknown {
			h.Format = tar.FormatPAX
		}
		if err := tw.WriteHeader(&h); err != nil {
			panic(fmt.Sprintf("tar header %s: %v", h.Name, err))
		}
		if _, err := tw.Write([]byte(e.Body)); err != nil {
			panic(fmt.Sprintf("tar body %s: %v", h.Name, err))
		}
	}
	if err := tw.Close(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// Short constructors for the catalogue.
func dir(name string) Entry { return Entry{Header: tar.Header{Name: name, Typeflag: tar.TypeDir}} }
func file(name, body string) Entry {
	return Entry{Header: tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644}, Body: body}
}
func symlink(name, target string) Entry {
	return Entry{Header: tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target}}
}
func hardlink(name, target string) Entry {
	return Entry{Header: tar.Header{Name: name, Typeflag: tar.TypeLink, Linkname: target}}
}

// rawHeader is a 512-byte ustar (or, with gnu, old GNU) header block;
// numbers too big for octal are written base-256 as GNU tar does.
func rawHeader(name string, typ byte, size int64, gnu bool) []byte {
	b := make([]byte, 512)
	copy(b[0:100], name)
	copy(b[100:108], "0000644\x00")
	copy(b[108:116], "0000000\x00")
	copy(b[116:124], "0000000\x00")
	putNumber(b[124:136], size)
	putNumber(b[136:148], archiveTime.Unix())
	b[156] = typ
	if gnu {
		copy(b[257:265], "ustar  \x00")
	} else {
		copy(b[257:263], "ustar\x00")
		copy(b[263:265], "00")
	}
	return b
}

// putNumber writes n into the tar number field f.
func putNumber(f []byte, n int64) {
	if s := fmt.Sprintf("%0*o", len(f)-1, n); len(s) == len(f)-1 {
		copy(f, s+"\x00")
		return
	}
	for i := len(f) - 1; i > 0; i-- {
		f[i] = byte(n)
		n >>= 8
	}
	f[0] = 0x80
}

// headerSum fills in a header block's checksum field.
func headerSum(b []byte) []byte {
	copy(b[148:156], "        ")
	sum := 0
	for _, c := range b {
		sum += int(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

// pad rounds data up to whole 512-byte blocks.
func pad(data []byte) []byte {
	if r := len(data) % 512; r != 0 {
		data = append(data, make([]byte, 512-r)...)
	}
	return data
}

// paxRecords is the body of a PAX extended header.
func paxRecords(kv ...string) []byte {
	var out []byte
	for i := 0; i+1 < len(kv); i += 2 {
		rec := " " + kv[i] + "=" + kv[i+1] + "\n"
		n := len(rec)
		for len(fmt.Sprint(n))+len(rec) != n {
			n = len(fmt.Sprint(n)) + len(rec)
		}
		out = append(out, fmt.Sprintf("%d%s", n, rec)...)
	}
	return out
}

// endBlocks are the two zero blocks ending an archive.
var endBlocks = make([]byte, 1024)

// HugeSparsePAX is a PAX GNU sparse 1.0 archive of about 2 KiB holding
// one file, name, whose real size is realSize: all hole but its last
// byte. A reader that turns holes into zeros reads realSize bytes.
func HugeSparsePAX(name string, realSize int64) []byte {
	pax := paxRecords("GNU.sparse.major", "1", "GNU.sparse.minor", "0",
		"GNU.sparse.name", name, "GNU.sparse.realsize", fmt.Sprint(realSize))
	sparseMap := pad([]byte(fmt.Sprintf("1\n%d\n1\n", realSize-1)))
	data := append(sparseMap, pad([]byte("x"))...)
	var out []byte
	out = append(out, headerSum(rawHeader("PaxHeaders/"+name, tar.TypeXHeader, int64(len(pax)), false))...)
	out = append(out, pad(pax)...)
	out = append(out, headerSum(rawHeader("GNUSparseFile.0/"+name, tar.TypeReg, int64(len(sparseMap))+1, false))...)
	out = append(out, data...)
	return append(out, endBlocks...)
}

// HugeSparseOldGNU is HugeSparsePAX in the old GNU sparse form (type 'S').
func HugeSparseOldGNU(name string, realSize int64) []byte {
	h := rawHeader(name, tar.TypeGNUSparse, 1, true)
	putNumber(h[386:398], realSize-1) // the one data fragment: its offset
	putNumber(h[398:410], 1)          // and length
	putNumber(h[483:495], realSize)
	var out []byte
	out = append(out, headerSum(h)...)
	out = append(out, pad([]byte("x"))...)
	return append(out, endBlocks...)
}

// HugeRegular is an archive whose one regular file announces size bytes
// and holds none of them.
func HugeRegular(name string, size int64) []byte {
	return append(headerSum(rawHeader(name, tar.TypeReg, size, true)), endBlocks...)
}

// escapeUp is a relative path that climbs from any directory to "/" and
// goes down to the absolute path abs.
func escapeUp(abs string) string {
	return strings.Repeat("../", 40) + strings.TrimPrefix(abs, "/")
}

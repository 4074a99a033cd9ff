// Package crc32c computes CRC-32C (Castagnoli) checksums without building
// hash/crc32's tables when a program starts.
//
// hash/crc32 builds its Castagnoli tables when a table is made: on amd64
// that computes about 1.5 MB of CRCs, which under qemu's emulation cost a
// thinctl process 15-25 ms at start whenever a package made one in a
// package-level variable (the journal once, the metadata reader later).
// Every checksum thinctl computes goes through Update instead; nothing
// here runs at start but a 2,048-entry table built from the polynomial.
package crc32c

import (
	"encoding/binary"
	"hash/crc32"
	"sync"
)

// Update continues the CRC-32C (Castagnoli) crc over p, like crc32.Update
// with a Castagnoli table. Inputs shorter than longMin (the registry's
// frames and headers, thin-pool metadata blocks) go through slicing-by-8
// tables built at start from the polynomial; a longer one goes to
// hash/crc32, whose table is built on its first use.
func Update(crc uint32, p []byte) uint32 {
	if len(p) >= longMin {
		return crc32.Update(crc, castagnoliTable(), p)
	}
	t := &slicing
	crc = ^crc
	for ; len(p) >= 8; p = p[8:] {
		crc ^= binary.LittleEndian.Uint32(p)
		crc = t[7][byte(crc)] ^ t[6][byte(crc>>8)] ^ t[5][byte(crc>>16)] ^ t[4][crc>>24] ^
			t[3][p[4]] ^ t[2][p[5]] ^ t[1][p[6]] ^ t[0][p[7]]
	}
	for _, b := range p {
		crc = t[0][byte(crc)^b] ^ crc>>8
	}
	return ^crc
}

// longMin is the input length from which Update uses hash/crc32.
const longMin = 512 << 10

// castagnoliTable is hash/crc32's Castagnoli table, made on first use.
var castagnoliTable = sync.OnceValue(func() *crc32.Table { return crc32.MakeTable(crc32.Castagnoli) })

// slicing[0][b] is the CRC-32C register after shifting in byte b;
// slicing[k][b], after shifting in b followed by k zero bytes.
var slicing = func() (t [8][256]uint32) {
	for i := range t[0] {
		c := uint32(i)
		for range 8 {
			if c&1 != 0 {
				c = c>>1 ^ crc32.Castagnoli
			} else {
				c >>= 1
			}
		}
		t[0][i] = c
	}
	for i := range t[0] {
		for k := 1; k < 8; k++ {
			t[k][i] = t[k-1][i]>>8 ^ t[0][byte(t[k-1][i])]
		}
	}
	return t
}()

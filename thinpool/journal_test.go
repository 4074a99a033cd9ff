package thinpool

import (
	"encoding/binary"
	"hash/crc32"
	"math/rand/v2"
	"testing"
)

// The journal's checksum is CRC-32C whichever way crc32c computes it: its
// slicing-by-8 tables for short inputs, hash/crc32's for long ones, and any
// mix of the two when a checksum is continued over several pieces.
func TestCrc32cIsHashCrc32sCastagnoliAtEveryLength(t *testing.T) {
	ref := crc32.MakeTable(crc32.Castagnoli)
	data := make([]byte, 3*crc32cLongMin+17)
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rnd.Uint32())
	}
	lengths := []int{0, 1, 7, 8, 9, 24, 40, 333, crc32cLongMin - 1, crc32cLongMin, crc32cLongMin + 1, len(data)}
	for _, n := range lengths {
		if got, want := crc32c(0, data[:n]), crc32.Checksum(data[:n], ref); got != want {
			t.Errorf("crc32c of %d bytes = %#08x, want %#08x", n, got, want)
		}
	}
	for _, split := range []int{0, 1, 40, crc32cLongMin - 1, crc32cLongMin, 2 * crc32cLongMin} {
		got := crc32c(crc32c(0, data[:split]), data[split:])
		if want := crc32.Checksum(data, ref); got != want {
			t.Errorf("crc32c continued at byte %d = %#08x, want %#08x", split, got, want)
		}
	}
	if got := crc32c(0, []byte("123456789")); got != 0xe3069283 {
		t.Errorf("crc32c of the standard check input = %#08x, want 0xe3069283", got)
	}
}

func TestNextMagicFindsOnlyAlignedMagicsUpToTheLastStart(t *testing.T) {
	put := func(data []byte, offs ...int) []byte {
		for _, o := range offs {
			binary.LittleEndian.PutUint32(data[o:], frameMagic)
		}
		return data
	}
	tests := []struct {
		name  string
		data  []byte
		q, hi int64
		want  int64
	}{
		{"zeros hold no magic", make([]byte, 256), 0, 200, -1},
		{"an aligned magic is found", put(make([]byte, 256), 64), 0, 200, 64},
		{"a magic at the start itself is found", put(make([]byte, 256), 64), 64, 200, 64},
		{"a magic before the start is not", put(make([]byte, 256), 64), 72, 200, -1},
		{"unaligned magics are skipped", put(make([]byte, 256), 3, 13, 17, 96), 0, 200, 96},
		{"an aligned magic right after an unaligned one is found", put(make([]byte, 256), 4, 8), 0, 200, 8},
		{"a magic at the last start is found", put(make([]byte, 256), 200), 0, 200, 200},
		{"a magic past the last start is not", put(make([]byte, 256), 208), 0, 200, -1},
		{"a start past the last start finds nothing", put(make([]byte, 256), 64), 208, 200, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := nextMagic(tt.data, tt.q, tt.hi); got != tt.want {
				t.Errorf("nextMagic(q=%d, hi=%d) = %d, want %d", tt.q, tt.hi, got, tt.want)
			}
		})
	}
}

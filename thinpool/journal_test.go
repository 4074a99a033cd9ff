package thinpool

import (
	"hash/crc32"
	"math/rand/v2"
	"testing"
)

// The journal's checksum is CRC-32C whichever way crc32c computes it: its
// byte-wise table for short inputs, hash/crc32's for long ones, and any
// mix of the two when a checksum is continued over several pieces.
func TestCrc32cIsHashCrc32sCastagnoliAtEveryLength(t *testing.T) {
	ref := crc32.MakeTable(crc32.Castagnoli)
	data := make([]byte, 3*crc32cShortMax+17)
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rnd.Uint32())
	}
	lengths := []int{0, 1, 7, 8, 9, 24, 40, 333, crc32cShortMax - 1, crc32cShortMax, crc32cShortMax + 1, len(data)}
	for _, n := range lengths {
		if got, want := crc32c(0, data[:n]), crc32.Checksum(data[:n], ref); got != want {
			t.Errorf("crc32c of %d bytes = %#08x, want %#08x", n, got, want)
		}
	}
	for _, split := range []int{0, 1, 40, crc32cShortMax - 1, crc32cShortMax, 2 * crc32cShortMax} {
		got := crc32c(crc32c(0, data[:split]), data[split:])
		if want := crc32.Checksum(data, ref); got != want {
			t.Errorf("crc32c continued at byte %d = %#08x, want %#08x", split, got, want)
		}
	}
	if got := crc32c(0, []byte("123456789")); got != 0xe3069283 {
		t.Errorf("crc32c of the standard check input = %#08x, want 0xe3069283", got)
	}
}

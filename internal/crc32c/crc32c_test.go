package crc32c

import (
	"hash/crc32"
	"math/rand/v2"
	"testing"
)

// Update is CRC-32C whichever way it computes it: its
// slicing-by-8 tables for short inputs, hash/crc32's for long ones, and any
// mix of the two when a checksum is continued over several pieces.
func TestUpdateIsHashCrc32sCastagnoliAtEveryLength(t *testing.T) {
	ref := crc32.MakeTable(crc32.Castagnoli)
	data := make([]byte, 3*longMin+17)
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rnd.Uint32())
	}
	lengths := []int{0, 1, 7, 8, 9, 24, 40, 333, longMin - 1, longMin, longMin + 1, len(data)}
	for _, n := range lengths {
		if got, want := Update(0, data[:n]), crc32.Checksum(data[:n], ref); got != want {
			t.Errorf("Update of %d bytes = %#08x, want %#08x", n, got, want)
		}
	}
	for _, split := range []int{0, 1, 40, longMin - 1, longMin, 2 * longMin} {
		got := Update(Update(0, data[:split]), data[split:])
		if want := crc32.Checksum(data, ref); got != want {
			t.Errorf("Update continued at byte %d = %#08x, want %#08x", split, got, want)
		}
	}
	if got := Update(0, []byte("123456789")); got != 0xe3069283 {
		t.Errorf("Update of the standard check input = %#08x, want 0xe3069283", got)
	}
}

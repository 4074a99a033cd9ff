package dmthin

import (
	"testing"

	"golang.org/x/sys/unix"
)

// Sizes in bytes, as thinpool spells them.
const (
	KiB = 1 << 10
	MiB = 1 << 20
	GiB = 1 << 30
)

func TestPoolTable(t *testing.T) {
	meta, data := unix.Mkdev(7, 1), unix.Mkdev(7, 0)
	cases := []struct {
		name       string
		dataBytes  uint64
		block      uint64
		noDiscard  bool
		wantLength uint64
		wantParams string
	}{
		{"Docker's 100 GiB default with 64 KiB blocks", 100 * GiB, 64 * KiB, false, 209715200,
			"7:1 7:0 128 32768 2 skip_block_zeroing error_if_no_space"},
		{"a data size that is not a whole block is rounded down", GiB + 1000, 64 * KiB, false, 2097152,
			"7:1 7:0 128 32768 2 skip_block_zeroing error_if_no_space"},
		{"1 MiB blocks use 2048 sectors", 2 * GiB, MiB, false, 4194304,
			"7:1 7:0 2048 32768 2 skip_block_zeroing error_if_no_space"},
		{"no discard adds ignore_discard", GiB, 64 * KiB, true, 2097152,
			"7:1 7:0 128 32768 3 skip_block_zeroing error_if_no_space ignore_discard"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := PoolTable{MetaDev: meta, DataDev: data, DataBytes: c.dataBytes, BlockSize: c.block, NoDiscard: c.noDiscard}.Target()
			if got.Type != "thin-pool" || got.Start != 0 || got.Length != c.wantLength || got.Params != c.wantParams {
				t.Fatalf("poolTable = %+v, want length %d params %q", got, c.wantLength, c.wantParams)
			}
		})
	}
}

func TestThinTable(t *testing.T) {
	got := ThinTarget(unix.Mkdev(253, 2), 17, 10*GiB)
	if got.Type != "thin" || got.Length != 20971520 || got.Params != "253:2 17" {
		t.Fatalf("thinTable = %+v", got)
	}
}

func TestTableTunedReadsTheLowWaterMarkAndTheOutOfSpaceMode(t *testing.T) {
	live := "253:1 253:2 128 32768 2 skip_block_zeroing error_if_no_space"
	if !Tuned(live, 0, false) || Tuned(live, 100, false) || Tuned(live, 0, true) {
		t.Fatal("a default table is read wrong")
	}
	tuned := PoolTable{MetaDev: unix.Mkdev(253, 1), DataDev: unix.Mkdev(253, 2), DataBytes: 64 * MiB, BlockSize: 64 * KiB, NoDiscard: true, LowWaterBlocks: 410, QueueIfNoSpace: true}.Target()
	if tuned.Params != "253:1 253:2 128 410 2 skip_block_zeroing ignore_discard" || !Tuned(tuned.Params, 410, true) {
		t.Fatalf("tuned table %q", tuned.Params)
	}
	for _, bad := range []string{"", "253:1 253:2", "253:1 253:2 128 x 0"} {
		if Tuned(bad, 0, false) {
			t.Errorf("%q read as tuned", bad)
		}
	}
}

func TestPoolTableDevicesAreTheFirstTwoFields(t *testing.T) {
	if meta, data, ok := PoolTableDevices("253:1 253:2 128 32768 1 skip_block_zeroing"); !ok || meta != "253:1" || data != "253:2" {
		t.Fatalf("got %q %q %v", meta, data, ok)
	}
	for _, bad := range []string{"", "253:1"} {
		if _, _, ok := PoolTableDevices(bad); ok {
			t.Errorf("%q has devices", bad)
		}
	}
}

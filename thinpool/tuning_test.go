package thinpool

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestTableTunedReadsTheLowWaterMarkAndTheOutOfSpaceMode(t *testing.T) {
	live := "253:1 253:2 128 32768 2 skip_block_zeroing error_if_no_space"
	if !tableTuned(live, TableTuning{}) || tableTuned(live, TableTuning{LowWaterBlocks: 100}) || tableTuned(live, TableTuning{QueueIfNoSpace: true}) {
		t.Fatal("a default table is read wrong")
	}
	tuned := tunedPoolTable(unix.Mkdev(253, 1), unix.Mkdev(253, 2), 64*MiB, 64*KiB, true, TableTuning{LowWaterBlocks: 410, QueueIfNoSpace: true})
	if tuned.Params != "253:1 253:2 128 410 2 skip_block_zeroing ignore_discard" || !tableTuned(tuned.Params, TableTuning{LowWaterBlocks: 410, QueueIfNoSpace: true}) {
		t.Fatalf("tuned table %q", tuned.Params)
	}
	for _, bad := range []string{"", "253:1 253:2", "253:1 253:2 128 x 0"} {
		if tableTuned(bad, TableTuning{}) {
			t.Errorf("%q read as tuned", bad)
		}
	}
}

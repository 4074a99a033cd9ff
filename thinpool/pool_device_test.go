package thinpool

import (
	"strings"
	"testing"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/thinpool/internal/dmthin"
)

func TestOptionsDefaultsAndLimits(t *testing.T) {
	o, err := Options{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if o.DataSize != 100*GiB || o.MetadataSize != 2*GiB || o.BlockSize != 64*KiB || o.BaseSize != 10*GiB ||
		o.Filesystem != "ext4" || o.MinFreeSpace != 10 {
		t.Fatalf("defaults = %+v", o)
	}
	none, err := Options{NoMinFreeSpace: true}.withDefaults()
	if err != nil || none.MinFreeSpace != 0 {
		t.Fatalf("NoMinFreeSpace gives MinFreeSpace %v (%v), want 0", none.MinFreeSpace, err)
	}
	if spaceError(Status{PoolName: "p", State: "rw", DataFreePercent: 0.5, MetadataFreePercent: 0.5, MinFreeSpace: none.MinFreeSpace}) != nil {
		t.Fatal("a pool with no minimum refuses a create at 0.5% free")
	}
	if _, err := (Options{NoMinFreeSpace: true, MinFreeSpace: 5}).withDefaults(); !errors.Is(err, ErrInvalidSize) {
		t.Fatalf("NoMinFreeSpace with a minimum = %v, want ErrInvalidSize", err)
	}
	cases := []struct {
		name    string
		opts    Options
		invSize bool
	}{
		{"a 32 KiB block size is refused", Options{BlockSize: 32 * KiB}, true},
		{"a 96 KiB block size (not a multiple of 64 KiB) is refused", Options{BlockSize: 96 * KiB}, true},
		{"a 2 GiB block size is refused", Options{BlockSize: 2 * GiB}, true},
		{"1 MiB of metadata is refused", Options{MetadataSize: MiB}, true},
		{"32 GiB of metadata is refused", Options{MetadataSize: 32 * GiB}, true},
		{"a data file smaller than 16 blocks is refused", Options{DataSize: 512 * KiB}, true},
		{"btrfs is refused", Options{Filesystem: "btrfs"}, false},
		{"a data device without a metadata device is refused", Options{DataDevice: "/dev/sdb"}, false},
		{"a minimum free space of 100% is refused", Options{MinFreeSpace: 100}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := c.opts.withDefaults()
			if err == nil {
				t.Fatal("accepted")
			}
			if c.invSize && !errors.Is(err, ErrInvalidSize) {
				t.Fatalf("error %v does not wrap ErrInvalidSize", err)
			}
		})
	}
	for _, bs := range []uint64{64 * KiB, 128 * KiB, 512 * KiB, GiB} {
		if _, err := (Options{BlockSize: bs}).withDefaults(); err != nil {
			t.Errorf("block size %d refused: %v", bs, err)
		}
	}
}

func TestStatusAndSpaceCheck(t *testing.T) {
	st, err := dmthin.ParsePoolStatus("3 1638/16384 29491/32768 - rw discard_passdown error_if_no_space - 3072")
	if err != nil {
		t.Fatal(err)
	}
	t.Run("blocks become bytes and percentages", func(t *testing.T) {
		var s Status
		fillStatus(&s, st, 64*KiB, -1, -1)
		if s.DataTotal != 2*GiB || s.DataUsed != 29491*64*KiB || s.MetadataTotal != 64*MiB || s.MetadataUsed != 1638*4096 {
			t.Fatalf("status %+v", s)
		}
		if s.DataUsedPercent < 89.9 || s.DataUsedPercent > 90.0 || s.State != "rw" {
			t.Fatalf("percent %.2f state %s", s.DataUsedPercent, s.State)
		}
	})
	t.Run("free space of the host filesystem caps what is available", func(t *testing.T) {
		var s Status
		fillStatus(&s, st, 64*KiB, 1<<20, -1)
		if s.DataAvailable != MiB {
			t.Fatalf("available %d, want 1 MiB", s.DataAvailable)
		}
	})
	cases := []struct {
		name string
		s    Status
		want error
	}{
		{"a pool with half its space free is fine", Status{State: "rw", DataFreePercent: 50, MetadataFreePercent: 50, MinFreeSpace: 10}, nil},
		{"9% free data is too little", Status{State: "rw", DataFreePercent: 9, MetadataFreePercent: 50, MinFreeSpace: 10}, ErrLowSpace},
		{"9% free metadata is too little", Status{State: "rw", DataFreePercent: 50, MetadataFreePercent: 9, MinFreeSpace: 10}, ErrLowSpace},
		{"out of data space is too little whatever the numbers", Status{State: "out_of_data_space", OutOfDataSpace: true, DataFreePercent: 50, MetadataFreePercent: 50, MinFreeSpace: 10}, ErrLowSpace},
		{"a read-only pool refuses", Status{State: "ro", ReadOnly: true, DataFreePercent: 50, MetadataFreePercent: 50}, ErrPoolReadOnly},
		{"a pool that needs a check refuses", Status{State: "rw", NeedsCheck: true, DataFreePercent: 50, MetadataFreePercent: 50}, ErrPoolReadOnly},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := spaceError(c.s)
			if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("spaceError = %v, want %v", err, c.want)
			}
		})
	}
	t.Run("the low-space error says which space to grow and names no command", func(t *testing.T) {
		err := spaceError(Status{PoolName: "p", State: "rw", DataFreePercent: 1, MetadataFreePercent: 50, MinFreeSpace: 10, DataTotal: GiB, DataAvailable: 10 * MiB})
		if !strings.Contains(err.Error(), "grow its data") || !strings.Contains(err.Error(), "10.0 MiB") || strings.Contains(err.Error(), "thinctl") {
			t.Fatalf("message %q", err)
		}
	})
}

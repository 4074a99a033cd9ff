package thinpool

import (
	"strings"
	"testing"

	"github.com/thinctl/thinctl/thinpool/internal/store"
)

func TestParsePoolStatus(t *testing.T) {
	cases := []struct {
		name string
		line string
		want poolStatus
		bad  bool
	}{
		{
			name: "a 6.1 kernel's healthy pool parses every field",
			line: "3 279/16384 1523/32768 - rw discard_passdown error_if_no_space - 3072",
			want: poolStatus{TransactionID: 3, MetadataUsed: 279, MetadataTotal: 16384, DataUsed: 1523, DataTotal: 32768,
				HeldRoot: "-", Mode: "rw", Discard: "discard_passdown", NoSpacePolicy: "error_if_no_space",
				MetaLowWater: 3072, HasMetaLowWater: true},
		},
		{
			name: "a full pool reports out_of_data_space and needs_check",
			line: "7 300/16384 32768/32768 1234 out_of_data_space no_discard_passdown queue_if_no_space needs_check 3072",
			want: poolStatus{TransactionID: 7, MetadataUsed: 300, MetadataTotal: 16384, DataUsed: 32768, DataTotal: 32768,
				HeldRoot: "1234", Mode: "out_of_data_space", Discard: "no_discard_passdown", NoSpacePolicy: "queue_if_no_space",
				NeedsCheck: true, MetaLowWater: 3072, HasMetaLowWater: true},
		},
		{
			name: "an old kernel's four fields parse",
			line: "0 141/4161600 0/3276800 -",
			want: poolStatus{MetadataUsed: 141, MetadataTotal: 4161600, DataTotal: 3276800, HeldRoot: "-"},
		},
		{
			name: "three fields are enough",
			line: "1 2/3 4/5",
			want: poolStatus{TransactionID: 1, MetadataUsed: 2, MetadataTotal: 3, DataUsed: 4, DataTotal: 5},
		},
		{
			name: "unknown words from newer kernels are ignored",
			line: "1 2/3 4/5 - ro discard_passdown error_if_no_space - 10 fancy_feature",
			want: poolStatus{TransactionID: 1, MetadataUsed: 2, MetadataTotal: 3, DataUsed: 4, DataTotal: 5, HeldRoot: "-",
				Mode: "ro", Discard: "discard_passdown", NoSpacePolicy: "error_if_no_space", MetaLowWater: 10, HasMetaLowWater: true},
		},
		{name: "Fail is a failed pool", line: "Fail", want: poolStatus{Failed: true, Mode: "fail"}},
		{name: "Error is a failed pool", line: "Error\n", want: poolStatus{Failed: true, Mode: "fail"}},
		{name: "an empty line is rejected", line: "", bad: true},
		{name: "a missing data field is rejected", line: "1 2/3", bad: true},
		{name: "a non-numeric transaction id is rejected", line: "x 2/3 4/5", bad: true},
		{name: "a fraction without a slash is rejected", line: "1 23 4/5", bad: true},
		{name: "used above total is rejected", line: "1 2/3 6/5", bad: true},
		{name: "a negative count is rejected", line: "1 -2/3 4/5", bad: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := parsePoolStatus(c.line)
			if c.bad {
				if err == nil {
					t.Fatalf("parsePoolStatus(%q) = %+v, want an error", c.line, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("parsePoolStatus(%q): %v", c.line, err)
			}
			if got != c.want {
				t.Fatalf("parsePoolStatus(%q)\n got %+v\nwant %+v", c.line, got, c.want)
			}
		})
	}
}

func TestParseThinStatus(t *testing.T) {
	cases := []struct {
		name string
		line string
		want thinStatus
		bad  bool
	}{
		{"a device with data reports mapped and highest", "204800 409599", thinStatus{MappedSectors: 204800, HighestMapped: 409599, HasHighest: true}, false},
		{"an empty device prints a dash for highest", "0 -", thinStatus{}, false},
		{"an old kernel prints only the mapped count", "128", thinStatus{MappedSectors: 128}, false},
		{"Fail is a failed device", "Fail", thinStatus{Failed: true}, false},
		{"an empty line is rejected", "", thinStatus{}, true},
		{"three fields are rejected", "1 2 3", thinStatus{}, true},
		{"a non-numeric highest is rejected", "1 x", thinStatus{}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseThinStatus(c.line)
			if (err != nil) != c.bad {
				t.Fatalf("parseThinStatus(%q) error = %v, want error %v", c.line, err, c.bad)
			}
			if !c.bad && got != c.want {
				t.Fatalf("parseThinStatus(%q) = %+v, want %+v", c.line, got, c.want)
			}
		})
	}
}

func FuzzParsePoolStatus(f *testing.F) {
	for _, s := range []string{
		"3 279/16384 1523/32768 - rw discard_passdown error_if_no_space - 3072",
		"0 141/4161600 0/3276800 -",
		"7 300/16384 32768/32768 1234 out_of_data_space no_discard_passdown queue_if_no_space needs_check 3072",
		"Fail", "", "1 2/3", "18446744073709551615 1/1 1/1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		s, err := parsePoolStatus(line)
		if err != nil {
			return
		}
		if s.Failed {
			if s.Mode != "fail" {
				t.Fatalf("failed status with mode %q", s.Mode)
			}
			return
		}
		if s.MetadataUsed > s.MetadataTotal || s.DataUsed > s.DataTotal {
			t.Fatalf("%q parsed to used above total: %+v", line, s)
		}
		if len(strings.Fields(line)) < 3 {
			t.Fatalf("%q has fewer than 3 fields but parsed", line)
		}
	})
}

func FuzzParseThinStatus(f *testing.F) {
	for _, s := range []string{"204800 409599", "0 -", "Fail", "", "1 2 3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		s, err := parseThinStatus(line)
		if err != nil {
			return
		}
		n := len(strings.Fields(line))
		if n < 1 || n > 2 {
			t.Fatalf("%q has %d fields but parsed to %+v", line, n, s)
		}
		if s.Failed && (s.MappedSectors != 0 || s.HasHighest) {
			t.Fatalf("failed status carries numbers: %+v", s)
		}
	})
}

func FuzzParseThinDumpDeviceIDs(f *testing.F) {
	f.Add(`<superblock uuid="" time="1" transaction="2" version="2" data_block_size="128" nr_data_blocks="16384">
  <device dev_id="1" mapped_blocks="0" transaction="0" creation_time="0" snap_time="0">
  </device>
  <device dev_id="7" mapped_blocks="3" transaction="1" creation_time="1" snap_time="1">
    <range_mapping origin_begin="0" data_begin="0" length="3" time="1"/>
  </device>
</superblock>`)
	f.Add(`<superblock></superblock>`)
	f.Add(`<device dev_id="x"/>`)
	f.Fuzz(func(t *testing.T, s string) {
		ids, err := parseThinDumpDeviceIDs(strings.NewReader(s))
		if err != nil {
			return
		}
		for i, id := range ids {
			if id > store.MaxDeviceID {
				t.Fatalf("id %d beyond 24 bits", id)
			}
			if i > 0 && ids[i-1] >= id {
				t.Fatalf("ids not sorted and unique: %v", ids)
			}
		}
	})
}

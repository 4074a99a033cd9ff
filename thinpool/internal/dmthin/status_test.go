package dmthin

import (
	"strings"
	"testing"
)

func TestParsePoolStatus(t *testing.T) {
	cases := []struct {
		name string
		line string
		want PoolStatus
		bad  bool
	}{
		{
			name: "a 6.1 kernel's healthy pool parses every field",
			line: "3 279/16384 1523/32768 - rw discard_passdown error_if_no_space - 3072",
			want: PoolStatus{TransactionID: 3, MetadataUsed: 279, MetadataTotal: 16384, DataUsed: 1523, DataTotal: 32768,
				HeldRoot: "-", Mode: "rw", Discard: "discard_passdown", NoSpacePolicy: "error_if_no_space",
				MetaLowWater: 3072, HasMetaLowWater: true},
		},
		{
			name: "a full pool reports out_of_data_space and needs_check",
			line: "7 300/16384 32768/32768 1234 out_of_data_space no_discard_passdown queue_if_no_space needs_check 3072",
			want: PoolStatus{TransactionID: 7, MetadataUsed: 300, MetadataTotal: 16384, DataUsed: 32768, DataTotal: 32768,
				HeldRoot: "1234", Mode: "out_of_data_space", Discard: "no_discard_passdown", NoSpacePolicy: "queue_if_no_space",
				NeedsCheck: true, MetaLowWater: 3072, HasMetaLowWater: true},
		},
		{
			name: "an old kernel's four fields parse",
			line: "0 141/4161600 0/3276800 -",
			want: PoolStatus{MetadataUsed: 141, MetadataTotal: 4161600, DataTotal: 3276800, HeldRoot: "-"},
		},
		{
			name: "three fields are enough",
			line: "1 2/3 4/5",
			want: PoolStatus{TransactionID: 1, MetadataUsed: 2, MetadataTotal: 3, DataUsed: 4, DataTotal: 5},
		},
		{
			name: "unknown words from newer kernels are ignored",
			line: "1 2/3 4/5 - ro discard_passdown error_if_no_space - 10 fancy_feature",
			want: PoolStatus{TransactionID: 1, MetadataUsed: 2, MetadataTotal: 3, DataUsed: 4, DataTotal: 5, HeldRoot: "-",
				Mode: "ro", Discard: "discard_passdown", NoSpacePolicy: "error_if_no_space", MetaLowWater: 10, HasMetaLowWater: true},
		},
		{name: "Fail is a failed pool", line: "Fail", want: PoolStatus{Failed: true, Mode: "fail"}},
		{name: "Error is a failed pool", line: "Error\n", want: PoolStatus{Failed: true, Mode: "fail"}},
		{name: "an empty line is rejected", line: "", bad: true},
		{name: "a missing data field is rejected", line: "1 2/3", bad: true},
		{name: "a non-numeric transaction id is rejected", line: "x 2/3 4/5", bad: true},
		{name: "a fraction without a slash is rejected", line: "1 23 4/5", bad: true},
		{name: "used above total is rejected", line: "1 2/3 6/5", bad: true},
		{name: "a negative count is rejected", line: "1 -2/3 4/5", bad: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParsePoolStatus(c.line)
			if c.bad {
				if err == nil {
					t.Fatalf("ParsePoolStatus(%q) = %+v, want an error", c.line, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePoolStatus(%q): %v", c.line, err)
			}
			if got != c.want {
				t.Fatalf("ParsePoolStatus(%q)\n got %+v\nwant %+v", c.line, got, c.want)
			}
		})
	}
}

func TestParseThinStatus(t *testing.T) {
	cases := []struct {
		name string
		line string
		want ThinStatus
		bad  bool
	}{
		{"a device with data reports mapped and highest", "204800 409599", ThinStatus{MappedSectors: 204800, HighestMapped: 409599, HasHighest: true}, false},
		{"an empty device prints a dash for highest", "0 -", ThinStatus{}, false},
		{"an old kernel prints only the mapped count", "128", ThinStatus{MappedSectors: 128}, false},
		{"Fail is a failed device", "Fail", ThinStatus{Failed: true}, false},
		{"an empty line is rejected", "", ThinStatus{}, true},
		{"three fields are rejected", "1 2 3", ThinStatus{}, true},
		{"a non-numeric highest is rejected", "1 x", ThinStatus{}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseThinStatus(c.line)
			if (err != nil) != c.bad {
				t.Fatalf("ParseThinStatus(%q) error = %v, want error %v", c.line, err, c.bad)
			}
			if !c.bad && got != c.want {
				t.Fatalf("ParseThinStatus(%q) = %+v, want %+v", c.line, got, c.want)
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
		s, err := ParsePoolStatus(line)
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
		s, err := ParseThinStatus(line)
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

package thintools

import (
	"strings"
	"testing"

	"github.com/thinctl/thinctl/thinpool/internal/store"
)

func TestParseThinDumpDeviceIDs(t *testing.T) {
	cases := []struct {
		name string
		xml  string
		want []uint32
		bad  bool
	}{
		{"two devices are listed sorted", `<superblock uuid="" time="1" transaction="3" flags="0" version="2" data_block_size="128" nr_data_blocks="16384">
  <device dev_id="7" mapped_blocks="3" transaction="1" creation_time="1" snap_time="1">
    <range_mapping origin_begin="0" data_begin="0" length="3" time="1"/>
  </device>
  <device dev_id="1" mapped_blocks="0" transaction="0" creation_time="0" snap_time="0">
  </device>
</superblock>`, []uint32{1, 7}, false},
		{"an empty pool lists nothing", `<superblock uuid="" time="0" transaction="0"></superblock>`, []uint32{}, false},
		{"output without a superblock is refused", `<device dev_id="1"/>`, nil, true},
		{"a non-numeric dev_id is refused", `<superblock><device dev_id="one"/></superblock>`, nil, true},
		{"a dev_id beyond 24 bits is refused", `<superblock><device dev_id="16777216"/></superblock>`, nil, true},
		{"truncated XML is refused", `<superblock><device dev_id="1">`, nil, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseDumpDeviceIDs(strings.NewReader(c.xml))
			if (err != nil) != c.bad {
				t.Fatalf("err = %v, want error %v", err, c.bad)
			}
			if !c.bad && (len(got) != len(c.want) || (len(got) > 0 && got[0] != c.want[0] || len(got) > 1 && got[1] != c.want[1])) {
				t.Fatalf("ids %v, want %v", got, c.want)
			}
		})
	}
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
		ids, err := ParseDumpDeviceIDs(strings.NewReader(s))
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

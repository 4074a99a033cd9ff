package store

import (
	"encoding/binary"
	"testing"
)

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

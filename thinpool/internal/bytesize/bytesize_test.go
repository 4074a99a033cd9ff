package bytesize

import "testing"

func TestSizesRoundAndPrintInBinaryUnits(t *testing.T) {
	if RoundUp(65537, 65536) != 131072 || RoundDown(131071, 65536) != 65536 || RoundUp(0, 512) != 0 {
		t.Fatal("rounding")
	}
	if Percent(1, 4) != 25 || Percent(1, 0) != 0 {
		t.Fatal("percent")
	}
	for n, want := range map[uint64]string{0: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 10 << 30: "10.0 GiB"} {
		if got := Format(n); got != want {
			t.Errorf("Format(%d) = %q, want %q", n, got, want)
		}
	}
}

package benchwire

import (
	"bytes"
	"strings"
	"testing"
)

func TestABlockReadsBackWhatWasWritten(t *testing.T) {
	data := bytes.Repeat([]byte("thin pool "), 200)
	var buf bytes.Buffer
	if err := Write(&buf, "BENCHX", data); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if len(line) > len("BENCHX ")+lineLen {
			t.Fatalf("line %q is longer than a console line of %d characters", line, lineLen)
		}
	}
	cases := []struct {
		name string
		text string
	}{
		{"as written", buf.String()},
		{"with carriage returns and other console lines between", "boot\r\n" + strings.ReplaceAll(buf.String(), "\n", "\r\n[  1.0] kernel line\r\n")},
		{"after an earlier block with other data", "BENCHX-BEGIN\nBENCHX AAAA\nBENCHX-END\n" + buf.String()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Read(c.text, "BENCHX")
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("read back %d bytes, want the %d written", len(got), len(data))
			}
		})
	}
}

func TestAnIncompleteOrDamagedBlockIsAnError(t *testing.T) {
	var buf bytes.Buffer
	if err := Write(&buf, "BENCHX", []byte("record")); err != nil {
		t.Fatal(err)
	}
	whole := buf.String()
	cases := []struct {
		name, text, want string
	}{
		{"no block at all", "just a boot log\n", "no complete BENCHX-BEGIN"},
		{"a block cut before its end", strings.TrimSuffix(whole, "BENCHX-END\n"), "no complete"},
		{"a block of another tag", strings.ReplaceAll(whole, "BENCHX", "BENCHY"), "no complete"},
		{"a line that is not base64", strings.Replace(whole, "BENCHX H", "BENCHX !", 1), "base64"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := Read(c.text, "BENCHX"); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Read = %v, want an error saying %q", err, c.want)
			}
		})
	}
}

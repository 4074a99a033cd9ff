package dm

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Every decoder of kernel output must survive arbitrary bytes: no panic, no
// endless loop, nothing read outside the reply.

func FuzzDecodeTargets(f *testing.F) {
	f.Add(kernelSpecs([]Target{{0, 2048, "thin-pool", "0 112/1024 12/128 - rw discard_passdown queue_if_no_space - 256"}}), uint32(1))
	f.Add(kernelSpecs([]Target{{0, 8, "zero", ""}, {8, 8, "linear", "7:0 8"}, {16, 8, "error", ""}}), uint32(3))
	f.Add([]byte{}, uint32(0))
	f.Add(make([]byte, 40), uint32(1))
	f.Fuzz(func(t *testing.T, data []byte, count uint32) {
		ts, err := decodeTargets(data, count)
		if err == nil && uint32(len(ts)) != count {
			t.Fatalf("%d targets decoded for count %d", len(ts), count)
		}
		for _, tg := range ts {
			if len(tg.Type) >= typeLen || len(tg.Params) >= len(data) {
				t.Fatalf("target %+v larger than its reply", tg)
			}
		}
	})
}

func FuzzDecodeNameList(f *testing.F) {
	f.Add(kernelNameList(manyDevices(3), true, true), true)
	f.Add(kernelNameList([]Device{{"a", "", 1}, {"b", "U", 2}}, true, true), true)
	f.Add(kernelNameList(manyDevices(2), false, false), false)
	f.Add(make([]byte, 16), true)
	f.Fuzz(func(t *testing.T, data []byte, extras bool) {
		buf := append(make([]byte, headerSize), data...)
		devs, err := decodeNameList(buf, headerSize, len(buf), extras)
		if err != nil {
			return
		}
		if len(devs) > len(data)/(nameListHdrSize+1)+1 {
			t.Fatalf("%d records from %d bytes", len(devs), len(data))
		}
	})
}

func FuzzDecodeVersions(f *testing.F) {
	f.Add(kernelVersions([]TargetVersion{{"thin-pool", 1, 22, 0}, {"thin", 1, 22, 0}, {"zero", 1, 2, 0}}))
	f.Add([]byte{})
	f.Add(make([]byte, 17))
	f.Fuzz(func(t *testing.T, data []byte) {
		vs, err := decodeVersions(data)
		if err == nil && len(vs) > len(data)/(versionsHdrSize+1)+1 {
			t.Fatalf("%d versions from %d bytes", len(vs), len(data))
		}
	})
}

func FuzzDecodeDeps(f *testing.F) {
	f.Add(kernelDeps([]uint64{unix.Mkdev(7, 0), unix.Mkdev(7, 1)}))
	f.Add(kernelDeps(nil))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := decodeDeps(data)
		if err == nil && depsHdrSize+8*len(d) > len(data) {
			t.Fatalf("%d deps from %d bytes", len(d), len(data))
		}
	})
}

func FuzzDecodeHeader(f *testing.F) {
	b := make([]byte, headerSize)
	(&header{Version: [3]uint32{4, 47, 0}, DataSize: 312, DataStart: 312, Name: "x", UUID: "y"}).encode(b)
	f.Add(b)
	f.Add(make([]byte, 400))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := decodeHeader(data)
		if err != nil {
			return
		}
		if len(h.Name) > MaxNameLen || len(h.UUID) > MaxUUIDLen {
			t.Fatalf("name %d / uuid %d bytes", len(h.Name), len(h.UUID))
		}
		if d, err := h.data(data); err == nil && len(d) > len(data) {
			t.Fatal("data area larger than the reply")
		}
	})
}

func FuzzParseKmsgRecord(f *testing.F) {
	f.Add("3,1234,5678901,-;device-mapper: table: 253:0: linear: Device lookup failed\n SUBSYSTEM=block\n")
	f.Add(`6,1,2,-;a\x5cb\x`)
	f.Add(";")
	f.Fuzz(func(t *testing.T, rec string) {
		msg, ok := parseKmsgRecord(rec)
		if ok && (strings.Contains(msg, "\n") || len(msg) > len(rec)) {
			t.Fatalf("message %q from record %q", msg, rec)
		}
		_ = pickReason([]string{msg, rec}, unix.Mkdev(253, 0))
	})
}

func FuzzParseProcMisc(f *testing.F) {
	f.Add("236 device-mapper\n")
	f.Add("183 hw_random\n 60 device-mapper\n")
	f.Fuzz(func(t *testing.T, text string) {
		if m, ok := parseProcMisc(text); ok && m >= 1<<20 {
			t.Fatalf("minor %d out of range", m)
		}
	})
}

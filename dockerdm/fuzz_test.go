package dockerdm

import (
	"bytes"
	"os"
	"testing"
)

// The fuzz targets feed each parser of a foreign format arbitrary bytes:
// none may panic, and what one accepts must satisfy the parser's promises.
// Seeds are the files Docker 20.10.24 and thin-provisioning-tools 0.9.0
// wrote in the VM rig and on the build machines.

func FuzzParseDeviceRecord(f *testing.F) {
	for _, s := range []string{
		`{"device_id":1,"size":2147483648,"transaction_id":1,"initialized":true,"deleted":false}`,
		`{"device_id":16777215,"size":0,"transaction_id":0}`,
		`{"device_id":1,"size":1,"transaction_id":1}{}`,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseDeviceRecord(b)
		if err == nil && r.DeviceID > maxDeviceID {
			t.Fatalf("accepted thin id %d", r.DeviceID)
		}
	})
}

func FuzzParseTransactionMetadata(f *testing.F) {
	f.Add([]byte(`{"open_transaction_id":3,"device_hash":"de81243ab021d42feecb70da44adf508932fb686d9fa639ac62816fb50386e3b","device_id":2}`))
	f.Add([]byte(`{"open_transaction_id":0}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseTransactionMetadata(b)
		if err == nil && m.DeviceID > maxDeviceID {
			t.Fatalf("accepted thin id %d", m.DeviceID)
		}
	})
}

func FuzzParseDeviceSetMetadata(f *testing.F) {
	f.Add([]byte(`{"next_device_id":1,"BaseDeviceUUID":"81b3d002-6a7b-400d-9831-050d68cc27f4","BaseDeviceFilesystem":"ext4"}`))
	f.Fuzz(func(t *testing.T, b []byte) { ParseDeviceSetMetadata(b) })
}

func FuzzParseImageConfig(f *testing.F) {
	f.Add([]byte(`{"architecture":"amd64","created":"2023-11-14T22:13:20Z","os":"linux","rootfs":{"type":"layers","diff_ids":["` + diffA + `","` + diffB + `"]}}`))
	f.Add([]byte(`{"rootfs":{"type":"layers","diff_ids":[]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseImageConfig(b)
		if err != nil {
			return
		}
		for _, d := range c.DiffIDs {
			if !IsDigest(d) {
				t.Fatalf("accepted diff id %q", d)
			}
		}
		if len(ChainIDs(c.DiffIDs)) != len(c.DiffIDs) {
			t.Fatal("chain ids and diff ids differ in number")
		}
	})
}

func FuzzParseRepositories(f *testing.F) {
	f.Add([]byte(`{"Repositories":{"t":{"t:1":"` + diffA + `","t@sha256:` + diffB[7:] + `":"` + diffB + `"}}}`))
	f.Add([]byte(`{"Repositories":{}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		refs, err := ParseRepositories(b)
		if err != nil {
			return
		}
		for id := range refs {
			if !IsDigest(id) {
				t.Fatalf("accepted image id %q", id)
			}
		}
	})
}

func FuzzParseContainerConfig(f *testing.F) {
	f.Add([]byte(`{"State":{"Running":false},"ID":"` + ctr1 + `","Config":{"Image":"t:1"},"Image":"` + diffA + `","Name":"/c1"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseContainerConfig(b)
		if err == nil && !isHex64(c.ID) {
			t.Fatalf("accepted container id %q", c.ID)
		}
	})
}

func FuzzParseLegacyDevices(f *testing.F) {
	f.Add([]byte(`{"Devices":{"":{"device_id":0,"size":10737418240,"transaction_id":1,"initialized":true},"511136ea3c5a64f264b78b5433614aec563103b4d4702f3ba7d4d2698e22c158":{"device_id":1,"size":10737418240,"transaction_id":2,"initialized":true}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, err := ParseLegacyDevices(b)
		if err != nil {
			return
		}
		for _, r := range recs {
			if r.Hash == "" {
				t.Fatal("a record without a hash")
			}
		}
	})
}

func FuzzParseSuperblock(f *testing.F) {
	if b, err := os.ReadFile("testdata/superblock.bin"); err == nil {
		f.Add(b)
		f.Add(b[:512]) // without the checksummed rest
	}
	f.Add(make([]byte, 4096))
	f.Fuzz(func(t *testing.T, b []byte) {
		sb, err := ParseSuperblock(b)
		if err == nil && (sb.DataUsed > sb.DataBlocks || sb.DataBlockSize%128 != 0) {
			t.Fatalf("accepted %+v", sb)
		}
	})
}

func FuzzParseThinDump(f *testing.F) {
	if b, err := os.ReadFile("testdata/thin_dump.xml"); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`<superblock transaction="1" data_block_size="128" nr_data_blocks="1"></superblock>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseThinDump(bytes.NewReader(b))
		if err != nil {
			return
		}
		seen := map[uint32]bool{}
		for _, dev := range d.Devices {
			if dev.ID > maxDeviceID || seen[dev.ID] {
				t.Fatalf("accepted device %d", dev.ID)
			}
			seen[dev.ID] = true
		}
	})
}

package dockerdm

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/pkg/errors"
)

func TestParseDeviceRecordAcceptsDockersRecordsOnly(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want DeviceRecord
		err  string
	}{
		{"the base record Docker 20.10 writes", `{"device_id":1,"size":2147483648,"transaction_id":1,"initialized":true,"deleted":false}`,
			DeviceRecord{DeviceID: 1, Size: 2147483648, TransactionID: 1, Initialized: true}, ""},
		{"a record marked deleted", `{"device_id":7,"size":10,"transaction_id":9,"initialized":false,"deleted":true}`,
			DeviceRecord{DeviceID: 7, Size: 10, TransactionID: 9, Deleted: true}, ""},
		{"a record from before the deleted field", ` {"device_id":0,"size":10737418240,"transaction_id":1,"initialized":true} `,
			DeviceRecord{DeviceID: 0, Size: 10737418240, TransactionID: 1, Initialized: true}, ""},
		{"an empty file", ``, DeviceRecord{}, "not a JSON object"},
		{"a JSON array", `[1]`, DeviceRecord{}, "not a JSON object"},
		{"a truncated record", `{"device_id":1,"size":2`, DeviceRecord{}, "bad JSON"},
		{"two records in one file", `{"device_id":1,"size":2,"transaction_id":1}{}`, DeviceRecord{}, "data after"},
		{"no device id", `{"size":2,"transaction_id":1}`, DeviceRecord{}, "no device_id"},
		{"a negative device id", `{"device_id":-1,"size":2,"transaction_id":1}`, DeviceRecord{}, "24-bit"},
		{"no size", `{"device_id":1,"transaction_id":1}`, DeviceRecord{}, "no size"},
		{"no transaction id", `{"device_id":1,"size":1}`, DeviceRecord{}, "no transaction_id"},
		{"a string device id", `{"device_id":"1","size":1,"transaction_id":1}`, DeviceRecord{}, "bad JSON"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseDeviceRecord([]byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrCorrupt) {
					t.Fatalf("err %v, want %q (ErrCorrupt)", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestParseTransactionAndDeviceSetMetadataReadDockersFiles(t *testing.T) {
	tx, err := ParseTransactionMetadata([]byte(`{"open_transaction_id":3,"device_hash":"de81243ab021d42feecb70da44adf508932fb686d9fa639ac62816fb50386e3b","device_id":2}`))
	if err != nil || tx.OpenTransactionID != 3 || tx.DeviceID != 2 || !strings.HasPrefix(tx.DeviceHash, "de81") {
		t.Errorf("transaction %+v, %v", tx, err)
	}
	if _, err := ParseTransactionMetadata([]byte(`{"device_hash":"x","device_id":2}`)); err == nil {
		t.Error("a transaction without open_transaction_id was accepted")
	}
	ds, err := ParseDeviceSetMetadata([]byte(`{"next_device_id":1,"BaseDeviceUUID":"81b3d002-6a7b-400d-9831-050d68cc27f4","BaseDeviceFilesystem":"xfs"}`))
	if err != nil || ds.NextDeviceID != 1 || ds.BaseDeviceFilesystem != "xfs" || ds.BaseDeviceUUID == "" {
		t.Errorf("deviceset %+v, %v", ds, err)
	}
}

func TestChainIDsFollowDockersFormula(t *testing.T) {
	got := ChainIDs([]string{diffA, diffB, diffC})
	want := []string{diffA, chainAB, chainBC}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ChainIDs = %v, want %v", got, want)
	}
	if len(ChainIDs(nil)) != 0 {
		t.Error("no diff ids, but chain ids")
	}
}

func TestParseImageConfigAndRepositoriesRejectWhatDockerWouldNotWrite(t *testing.T) {
	tests := []struct {
		name string
		fn   func() error
		err  string
	}{
		{"a configuration without rootfs", func() error { _, err := ParseImageConfig([]byte(`{"os":"linux"}`)); return err }, "no rootfs"},
		{"a rootfs of another type", func() error {
			_, err := ParseImageConfig([]byte(`{"rootfs":{"type":"tarsum","diff_ids":[]}}`))
			return err
		}, `type "tarsum"`},
		{"a diff id that is not a digest", func() error {
			_, err := ParseImageConfig([]byte(`{"rootfs":{"type":"layers","diff_ids":["sha256:abc"]}}`))
			return err
		}, "not a sha256 digest"},
		{"a tag naming no digest", func() error {
			_, err := ParseRepositories([]byte(`{"Repositories":{"t":{"t:1":"abc"}}}`))
			return err
		}, "not a sha256 digest"},
		{"a reference outside its repository", func() error {
			_, err := ParseRepositories([]byte(`{"Repositories":{"t":{"u:1":"` + diffA + `"}}}`))
			return err
		}, "not in repository"},
		{"a container id that is not 64 hex digits", func() error {
			_, err := ParseContainerConfig([]byte(`{"ID":"abc"}`))
			return err
		}, "64 hex"},
		{"a legacy file without devices", func() error { _, err := ParseLegacyDevices([]byte(`{}`)); return err }, "no Devices"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.fn()
			if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("err %v, want %q", err, tc.err)
			}
		})
	}
}

// testdata/superblock.bin is block 0 of metadata thin_restore (0.9.0)
// wrote from testdata/pool.xml; thin_dump.xml is thin_dump --skip-mappings
// of it.
func TestParseSuperblockReadsWhatThinRestoreWrote(t *testing.T) {
	b, err := os.ReadFile("testdata/superblock.bin")
	if err != nil {
		t.Fatal(err)
	}
	sb, err := ParseSuperblock(b)
	if err != nil {
		t.Fatal(err)
	}
	want := Superblock{TransactionID: 7, DataBlockSize: 128, DataBlocks: 1000, DataUsed: 5, Version: 2}
	got := sb
	got.MetadataBlocks, got.MetadataUsed = 0, 0
	if got != want || sb.MetadataBlocks != 8<<20/4096 || sb.MetadataUsed == 0 {
		t.Errorf("superblock %+v, want %+v with 2048 metadata blocks", sb, want)
	}
	bad := append([]byte(nil), b...)
	bad[48]++ // the transaction id, under the checksum
	if _, err := ParseSuperblock(bad); !errors.Is(err, ErrNotThinMetadata) || !strings.Contains(err.Error(), "checksum") {
		t.Errorf("a changed superblock: %v", err)
	}
	if _, err := ParseSuperblock(make([]byte, 4096)); !errors.Is(err, ErrNotThinMetadata) {
		t.Errorf("zeros: %v", err)
	}
}

func TestParseThinDumpReadsDevicesAndRejectsMalformedOutput(t *testing.T) {
	f, err := os.Open("testdata/thin_dump.xml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d, err := ParseThinDump(f)
	if err != nil {
		t.Fatal(err)
	}
	want := []ThinDevice{{1, 3, 0}, {2, 4, 1}, {5, 1, 4}}
	if d.TransactionID != 7 || d.DataBlockSize != 128 || d.DataBlocks != 1000 || !reflect.DeepEqual(d.Devices, want) {
		t.Errorf("dump %+v", d)
	}
	for _, bad := range []string{
		``,
		`<device dev_id="1" mapped_blocks="1" transaction="0"/>`,
		`<superblock transaction="1" data_block_size="128" nr_data_blocks="1"><device dev_id="16777216" mapped_blocks="1" transaction="0"/></superblock>`,
		`<superblock transaction="1" data_block_size="128" nr_data_blocks="1"><device dev_id="1" mapped_blocks="1" transaction="0"/><device dev_id="1" mapped_blocks="1" transaction="0"/></superblock>`,
		`<superblock transaction="x" data_block_size="128" nr_data_blocks="1"></superblock>`,
	} {
		if _, err := ParseThinDump(strings.NewReader(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

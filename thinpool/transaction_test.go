package thinpool

import "testing"

func TestDecideTx(t *testing.T) {
	cases := []struct {
		name     string
		tx       txRecord
		recorded uint32
		want     txAction
	}{
		{"a create whose record was written is kept", txRecord{Op: opCreateSnap, DeviceID: 5, ID: "a"}, 5, txKeep},
		{"a create without its record is undone", txRecord{Op: opCreateSnap, DeviceID: 5, ID: "a"}, 0, txUndo},
		{"a create whose id names another device's record is undone", txRecord{Op: opCreateSnap, DeviceID: 5, ID: "a"}, 4, txUndo},
		{"the base create_thin (no registry id) is undone", txRecord{Op: opCreateThin, DeviceID: 1}, 0, txUndo},
		{"a delete with its record left is finished", txRecord{Op: opDelete, DeviceID: 9, ID: "b"}, 9, txFinish},
		{"a delete whose record is gone is finished", txRecord{Op: opDelete, DeviceID: 9, ID: "b"}, 0, txFinish},
		{"an orphan delete is finished", txRecord{Op: opDelete, DeviceID: 9}, 0, txFinish},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := decideTx(c.tx, c.recorded); got != c.want {
				t.Fatalf("decideTx(%+v, recorded %d) = %s, want %s", c.tx, c.recorded, got, c.want)
			}
		})
	}
}

func TestTxMessage(t *testing.T) {
	cases := []struct {
		name string
		tx   txRecord
		want string
	}{
		{"create_thin names the new id", txRecord{Op: opCreateThin, DeviceID: 1}, "create_thin 1"},
		{"create_snap names the new id then the origin", txRecord{Op: opCreateSnap, DeviceID: 12, OriginDeviceID: 3}, "create_snap 12 3"},
		{"delete names the id", txRecord{Op: opDelete, DeviceID: 16777215}, "delete 16777215"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.tx.message(); got != c.want {
				t.Fatalf("message = %q, want %q", got, c.want)
			}
		})
	}
}

func TestTxValidate(t *testing.T) {
	cases := []struct {
		name string
		tx   txRecord
		ok   bool
	}{
		{"a complete create_snap is valid", txRecord{Op: opCreateSnap, DeviceID: 4, OriginDeviceID: 1, ID: "b"}, true},
		{"an orphan delete without id is valid", txRecord{Op: opDelete, DeviceID: 4}, true},
		{"create_snap without origin is invalid", txRecord{Op: opCreateSnap, DeviceID: 4}, false},
		{"device id 0 is invalid", txRecord{Op: opDelete}, false},
		{"a device id beyond 24 bits is invalid", txRecord{Op: opDelete, DeviceID: 1 << 24}, false},
		{"an unknown op is invalid", txRecord{Op: "create_everything", DeviceID: 4}, false},
		{"an invalid registry id is invalid", txRecord{Op: opDelete, DeviceID: 4, ID: "../x"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.tx.validate(); (err == nil) != c.ok {
				t.Fatalf("validate = %v, want ok=%v", err, c.ok)
			}
		})
	}
}

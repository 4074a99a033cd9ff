package thinpool

import (
	"testing"

	"github.com/thinctl/thinctl/thinpool/internal/store"
)

func TestDecideTx(t *testing.T) {
	cases := []struct {
		name     string
		tx       store.Tx
		recorded uint32
		want     txAction
	}{
		{"a create whose record was written is kept", store.Tx{Op: store.OpCreateSnap, DeviceID: 5, ID: "a"}, 5, txKeep},
		{"a create without its record is undone", store.Tx{Op: store.OpCreateSnap, DeviceID: 5, ID: "a"}, 0, txUndo},
		{"a create whose id names another device's record is undone", store.Tx{Op: store.OpCreateSnap, DeviceID: 5, ID: "a"}, 4, txUndo},
		{"the base create_thin (no registry id) is undone", store.Tx{Op: store.OpCreateThin, DeviceID: 1}, 0, txUndo},
		{"a delete with its record left is finished", store.Tx{Op: store.OpDelete, DeviceID: 9, ID: "b"}, 9, txFinish},
		{"a delete whose record is gone is finished", store.Tx{Op: store.OpDelete, DeviceID: 9, ID: "b"}, 0, txFinish},
		{"an orphan delete is finished", store.Tx{Op: store.OpDelete, DeviceID: 9}, 0, txFinish},
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
		tx   store.Tx
		want string
	}{
		{"create_thin names the new id", store.Tx{Op: store.OpCreateThin, DeviceID: 1}, "create_thin 1"},
		{"create_snap names the new id then the origin", store.Tx{Op: store.OpCreateSnap, DeviceID: 12, OriginDeviceID: 3}, "create_snap 12 3"},
		{"delete names the id", store.Tx{Op: store.OpDelete, DeviceID: 16777215}, "delete 16777215"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.tx.Message(); got != c.want {
				t.Fatalf("message = %q, want %q", got, c.want)
			}
		})
	}
}

func TestTxValidate(t *testing.T) {
	cases := []struct {
		name string
		tx   store.Tx
		ok   bool
	}{
		{"a complete create_snap is valid", store.Tx{Op: store.OpCreateSnap, DeviceID: 4, OriginDeviceID: 1, ID: "b"}, true},
		{"an orphan delete without id is valid", store.Tx{Op: store.OpDelete, DeviceID: 4}, true},
		{"create_snap without origin is invalid", store.Tx{Op: store.OpCreateSnap, DeviceID: 4}, false},
		{"device id 0 is invalid", store.Tx{Op: store.OpDelete}, false},
		{"a device id beyond 24 bits is invalid", store.Tx{Op: store.OpDelete, DeviceID: 1 << 24}, false},
		{"an unknown op is invalid", store.Tx{Op: "create_everything", DeviceID: 4}, false},
		{"an invalid registry id is invalid", store.Tx{Op: store.OpDelete, DeviceID: 4, ID: "../x"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.tx.Validate(); (err == nil) != c.ok {
				t.Fatalf("validate = %v, want ok=%v", err, c.ok)
			}
		})
	}
}

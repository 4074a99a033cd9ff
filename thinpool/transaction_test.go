package thinpool

import "testing"

func TestDecideTx(t *testing.T) {
	cases := []struct {
		name     string
		op       string
		target   uint64
		poolTxID uint64
		want     txAction
	}{
		{"a create the pool committed rolls forward", opCreateSnap, 5, 5, txRollForward},
		{"a create the pool did not commit rolls back", opCreateSnap, 5, 4, txRollBack},
		{"a delete the pool committed rolls forward", opDelete, 9, 9, txRollForward},
		{"a delete the pool did not commit rolls back (deletes again)", opDelete, 9, 8, txRollBack},
		{"the base create_thin at transaction 1 rolls back from 0", opCreateThin, 1, 0, txRollBack},
		{"a pool id beyond the transaction is a conflict", opCreateSnap, 5, 6, txConflict},
		{"a pool id two behind is a conflict", opCreateSnap, 5, 3, txConflict},
		{"a pool reset to 0 is a conflict", opDelete, 7, 0, txConflict},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := decideTx(txRecord{Op: c.op, PoolTransactionID: c.target, DeviceID: 3}, c.poolTxID)
			if got != c.want {
				t.Fatalf("decideTx(target %d, pool %d) = %s, want %s", c.target, c.poolTxID, got, c.want)
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
	rec := deviceRecord{ID: "b", DeviceID: 4}
	cases := []struct {
		name string
		tx   txRecord
		ok   bool
	}{
		{"a complete create_snap is valid", txRecord{Op: opCreateSnap, PoolTransactionID: 2, DeviceID: 4, OriginDeviceID: 1, ID: "b", Record: &rec}, true},
		{"an orphan delete without id is valid", txRecord{Op: opDelete, PoolTransactionID: 2, DeviceID: 4}, true},
		{"create_snap without origin is invalid", txRecord{Op: opCreateSnap, PoolTransactionID: 2, DeviceID: 4}, false},
		{"device id 0 is invalid", txRecord{Op: opDelete, PoolTransactionID: 2}, false},
		{"pool transaction 0 is invalid", txRecord{Op: opDelete, DeviceID: 4}, false},
		{"a record for another device is invalid", txRecord{Op: opCreateSnap, PoolTransactionID: 2, DeviceID: 5, OriginDeviceID: 1, ID: "b", Record: &rec}, false},
		{"an invalid registry id is invalid", txRecord{Op: opDelete, PoolTransactionID: 2, DeviceID: 4, ID: "../x"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.tx.validate(); (err == nil) != c.ok {
				t.Fatalf("validate = %v, want ok=%v", err, c.ok)
			}
		})
	}
}

package store

import (
	"testing"
)

func TestReturningKeysNeverCollideWithUserIDs(t *testing.T) {
	for _, tc := range []struct {
		key       string
		returning bool
	}{
		{ReturningKey(1), true},
		{ReturningKey(MaxDeviceID), true},
		{"~returning-0", false},
		{"~returning-16777216", false},
		{"~returning-07", false},
		{"~returning-", false},
		{"returning-7", false},
		{"~returning-7x", false},
	} {
		if got := IsReturningKey(tc.key); got != tc.returning {
			t.Errorf("IsReturningKey(%q) = %v, want %v", tc.key, got, tc.returning)
		}
		if tc.returning && ValidateID(tc.key) == nil {
			t.Errorf("%q is both a returning key and a valid user id", tc.key)
		}
		if tc.returning && !validKey(tc.key) {
			t.Errorf("validKey(%q) = false for a returning key", tc.key)
		}
	}
}

func TestATransactionMayNameAReturningDevice(t *testing.T) {
	for _, tc := range []struct {
		name  string
		id    string
		valid bool
	}{
		{"a user id", "layer-1", true},
		{"a returning key", ReturningKey(42), true},
		{"no id (an orphan)", "", true},
		{"an id with a slash", "a/b", false},
		{"a malformed returning key", "~returning-x", false},
	} {
		err := Tx{Op: OpDelete, DeviceID: 42, ID: tc.id}.Validate()
		if (err == nil) != tc.valid {
			t.Errorf("%s: validate = %v, want valid %v", tc.name, err, tc.valid)
		}
	}
}

// A record whose space is being reclaimed is also marked deleted, yet GC's
// list of deferred removals (Deleted) never holds it: only Returning does,
// so Pool's removal path never meets one.
func TestARecordReclaimingSpaceIsReturningAndNotDeleted(t *testing.T) {
	r := newTestRegistry(t)
	d := sampleDevice(ReturningKey(9), 9)
	d.ReturningSpace, d.Deleted, d.RemovedID, d.Parent = true, true, "gone", ""
	mustOK(t, r.Put(d))
	held := sampleDevice("held", 10)
	held.Deleted = true
	mustOK(t, r.Put(held))
	for _, s := range []*Store{r, reopened(t, r.dir)} {
		if _, err := s.Get(d.ID); err != nil {
			t.Fatal(err)
		}
		if got := s.Deleted(); len(got) != 1 || got[0] != "held" {
			t.Errorf("Deleted() = %v, want [held]", got)
		}
		if got := s.Returning(); len(got) != 1 || got[0] != d.ID {
			t.Errorf("Returning() = %v, want [%s]", got, d.ID)
		}
	}
}

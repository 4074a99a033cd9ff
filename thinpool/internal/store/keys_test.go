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

package dm

import "testing"

func TestThinPoolMessagesAreTheKernelsWords(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{ThinCreate(1), "create_thin 1"},
		{ThinCreateSnap(16777215, 7), "create_snap 16777215 7"},
		{ThinDelete(42), "delete 42"},
		{ThinSetTransactionID(0, 1), "set_transaction_id 0 1"},
		{ThinSetTransactionID(18446744073709551615, 0), "set_transaction_id 18446744073709551615 0"},
		{ThinReserveMetadataSnap, "reserve_metadata_snap"},
		{ThinReleaseMetadataSnap, "release_metadata_snap"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

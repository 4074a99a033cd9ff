package store

// Every format version the store writes or reads, in one place
// (docs/registry.md describes each format).
//
// pool.json carries Version (V2 and V1 are read: a version 1 root is
// migrated, a version 2 root's pool.json rewritten at 3 by Open, its files
// read as they are). The registry file and the journal carry their own
// format number in their headers (formatV2 or Version). The JSON documents
// inside entries, device records and transactions, carry RecordVersion.
const (
	// Version is the format version written into pool.json and into the
	// headers of the registry file and the journal. Readers refuse newer
	// versions. Version 3 lets several transactions be open at once (each
	// end entry names the thin id it ends).
	Version = 3
	// V2 is pool.json's version in a root written before several
	// transactions could be open at once; its binary files (one open
	// transaction at most, end entries without a thin id) are read as
	// they are, and new files are written at Version.
	V2 = 2
	// V1 is the format version of pool.json and every file of a version 1
	// root (one JSON file per device); only migration reads it.
	V1 = 1
	// RecordVersion is the version of the JSON documents inside entries
	// (device records and transactions); version 3 did not change them.
	RecordVersion = 2
)

// formatV2 is the oldest version of the binary files this package reads.
const formatV2 = V2

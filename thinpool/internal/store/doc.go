// Package store is thinpool's durable store: the device records of one
// root and the transactions around the pool messages that change them.
//
// On disk (docs/registry.md, byte by byte) it is pool.json (the pool's
// configuration, Config), the registry file (every record as of the last
// compaction) and the journal (checksummed frames appended since, one
// fdatasync per durable append), with the lock file beside them (Lock:
// the root lock, the change counter that tells a process what others
// appended, the claims on transactions in flight and on space being
// reclaimed). In memory it is an index over the records (index.go).
//
// Where each part lives:
//
//   - records.go: the record types (Config, Device, Tx) and their keys;
//   - version.go: every format version;
//   - store.go: the Store, pool.json, a new store, and the records'
//     Get/Put/Move/Remove/List;
//   - load.go: loading the files and catching up with other processes;
//   - append.go: journal appends and compaction;
//   - tx.go: the transactions' begin and end entries, the group-committed
//     begins, and the transactions crashed processes left;
//   - query.go: what Pool asks of the index, and thin id allocation;
//   - group.go: group commit of begin frames (one flush for many);
//   - journal.go: the encoders and decoders of the binary files;
//   - lock.go: the root lock, its counters and the claims;
//   - migrate.go, v1.go: the conversion of a version 1 root.
//
// Pool (package thinpool) reaches the store only through the methods
// here; callers hold the root lock unless a method says otherwise.
package store

package store

import (
	"strconv"
	"strings"
	"time"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/dm"
	"github.com/thinctl/thinctl/fs"
)

// The records the store keeps: pool.json (Config), one Device per thin
// device, one Tx per pool message in flight; and the keys that name them.

// Config is pool.json: the pool's configuration and the base device.
type Config struct {
	Version  int    `json:"version"`
	PoolName string `json:"pool_name"`
	// Key identifies the root in device-mapper names and uuids
	// ("<major>:<minor>-<inode>" of the root directory at Init).
	Key          string `json:"key"`
	ExternalPool bool   `json:"external_pool,omitempty"`
	// DataFile and MetadataFile are relative to <root>/devicemapper when
	// the pool uses loop files (absolute for a pool Adopt took over, whose
	// files stay where the other program kept them); DataDevice and MetadataDevice are absolute
	// block device paths otherwise.
	DataFile       string    `json:"data_file,omitempty"`
	MetadataFile   string    `json:"metadata_file,omitempty"`
	DataDevice     string    `json:"data_device,omitempty"`
	MetadataDevice string    `json:"metadata_device,omitempty"`
	DataSize       uint64    `json:"data_size"`
	MetadataSize   uint64    `json:"metadata_size"`
	BlockSize      uint64    `json:"block_size"`
	NoDiscard      bool      `json:"no_discard,omitempty"`
	MinFreeSpace   float64   `json:"min_free_space"`
	Filesystem     fs.Type   `json:"filesystem"`
	MkfsArgs       []string  `json:"mkfs_args,omitempty"`
	MountOptions   []string  `json:"mount_options,omitempty"`
	BaseDeviceID   uint32    `json:"base_device_id"`
	BaseSize       uint64    `json:"base_size"`
	BaseUUID       string    `json:"base_uuid"`
	NextDeviceID   uint32    `json:"next_device_id"`
	Created        time.Time `json:"created"`
	// AdoptedFrom says which other program's pool Adopt took over ("" for
	// a pool Init made); ForeignTransactionID is the pool's transaction id
	// as that program left it (Adopt does not change it).
	AdoptedFrom          string `json:"adopted_from,omitempty"`
	ForeignTransactionID uint64 `json:"foreign_transaction_id,omitempty"`
}

// Device is one thin device: the body of a put entry (a file of its
// own, devices/<id>.json, in version 1).
type Device struct {
	Version     int       `json:"version"`
	ID          string    `json:"id"`
	DeviceID    uint32    `json:"device_id"`
	Size        uint64    `json:"size"`
	Initialized bool      `json:"initialized"`
	Deleted     bool      `json:"deleted"`
	Parent      string    `json:"parent"`
	Created     time.Time `json:"created"`
	// GrowPending is set when the device is bigger than its parent's
	// filesystem; the first activation (ext4) or mount (xfs) grows the
	// filesystem and clears it.
	GrowPending bool `json:"grow_pending,omitempty"`
	// Labels are the caller's string pairs (see labels.go), written in
	// the same durable append as the device itself.
	Labels map[string]string `json:"labels,omitempty"`
	// ReturningSpace marks a removed device whose blocks are still being
	// discarded (given back to the data file) before its thin device is
	// deleted from the pool. Such a record is kept under the key
	// ReturningKey(DeviceID), which no user id can be, so the user's id is
	// free again as soon as Remove returns; it is also marked Deleted.
	ReturningSpace bool `json:"returning_space,omitempty"`
	// RemovedID is the user id a ReturningSpace record's device had.
	RemovedID string `json:"removed_id,omitempty"`
}

func validateDeviceRecord(path, id string, d Device) error {
	if d.ID != id {
		return errors.Wrapf(ErrCorrupt, "%s records id %q, not %q", path, d.ID, id)
	}
	if !validKey(d.ID) {
		return errors.Wrapf(ErrCorrupt, "%s: %v", path, ValidateID(d.ID))
	}
	if d.DeviceID == 0 || d.DeviceID > MaxDeviceID {
		return errors.Wrapf(ErrCorrupt, "%s has device_id %d outside 1..%d", path, d.DeviceID, MaxDeviceID)
	}
	return nil
}

// The operations a transaction wraps.
// The operations a transaction wraps.
const (
	OpCreateThin = "create_thin"
	OpCreateSnap = "create_snap"
	OpDelete     = "delete"
)

// Tx is the one pool message in flight: the body of a begin entry
// in the journal, made durable before the message is sent and ended once
// the registry matches what the message did, so a crash anywhere in
// between leaves enough behind for Open to make registry and pool agree
// again. (Version 1 kept it in transaction.json.)
//
// The kernel commits the pool's metadata after every message it accepts,
// so a message that returned is on disk; one that did not return may or
// may not have reached the pool. A create carries the new device's record
// (Device), so the end entry need not be flushed: recovery asks the pool
// whether the id exists (create_thin: EEXIST) and keeps the record, or
// finds that the message never arrived and undoes the probe. A delete is
// simply sent again.
type Tx struct {
	Version  int    `json:"version"`
	Op       string `json:"op"`
	DeviceID uint32 `json:"device_id"`
	// OriginDeviceID is the snapshot's origin (create_snap only).
	OriginDeviceID uint32 `json:"origin_device_id,omitempty"`
	// ID is the registry id; empty for the base device and for orphans.
	ID      string    `json:"id,omitempty"`
	Started time.Time `json:"started"`
	// Device is the record a create adds when it succeeds; nil for
	// deletes, the base device and transactions migrated from version 1.
	Device *Device `json:"device,omitempty"`
}

// Validate checks a transaction read from disk: a known op, thin ids in
// range, a valid key, and a carried record that matches.
func (t Tx) Validate() error {
	switch t.Op {
	case OpCreateThin, OpDelete:
	case OpCreateSnap:
		if t.OriginDeviceID == 0 || t.OriginDeviceID > MaxDeviceID {
			return errors.Errorf("create_snap with origin_device_id %d", t.OriginDeviceID)
		}
	default:
		return errors.Errorf("unknown op %q", t.Op)
	}
	if t.DeviceID == 0 || t.DeviceID > MaxDeviceID {
		return errors.Errorf("device_id %d outside 1..%d", t.DeviceID, MaxDeviceID)
	}
	if t.ID != "" && !validKey(t.ID) {
		return ValidateID(t.ID)
	}
	if d := t.Device; d != nil {
		if t.Op == OpDelete || d.ID != t.ID || d.DeviceID != t.DeviceID {
			return errors.Errorf("%s of thin id %d (%q) carries the record of %q, thin id %d", t.Op, t.DeviceID, t.ID, d.ID, d.DeviceID)
		}
	}
	return nil
}

// Message is the pool message the transaction sends.
func (t Tx) Message() string {
	switch t.Op {
	case OpCreateSnap:
		return dm.ThinCreateSnap(t.DeviceID, t.OriginDeviceID)
	case OpCreateThin:
		return dm.ThinCreate(t.DeviceID)
	default:
		return dm.ThinDelete(t.DeviceID)
	}
}

// returningKeyPrefix starts the registry key of a device returning space.
// '~' is not allowed in user ids, so the keys never collide with them.
const returningKeyPrefix = "~returning-"

// ReturningKey is the registry key of thin device devID returning space.
func ReturningKey(devID uint32) string {
	return returningKeyPrefix + strconv.FormatUint(uint64(devID), 10)
}

// IsReturningKey reports whether key is a ReturningKey.
func IsReturningKey(key string) bool {
	_, ok := ReturningDevID(key)
	return ok
}

// ReturningDevID is the thin id of ReturningKey key; false when key is not
// one.
func ReturningDevID(key string) (uint32, bool) {
	n, ok := strings.CutPrefix(key, returningKeyPrefix)
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseUint(n, 10, 32)
	if err != nil || v == 0 || v > MaxDeviceID || ReturningKey(uint32(v)) != key {
		return 0, false
	}
	return uint32(v), true
}

// validKey reports whether key can name a registry record: a user id or a
// returning key.
func validKey(key string) bool { return ValidateID(key) == nil || IsReturningKey(key) }

// MaxDeviceID is the largest thin device id the kernel accepts (24 bits).
const MaxDeviceID = 1<<24 - 1

// maxIDLength is the longest device id ValidateID accepts.
const maxIDLength = 128

// ValidateID checks a device id: 1..128 of [A-Za-z0-9_.-], not starting
// with '.' or '-'. Ids become file names in the registry and mount point
// names, so the rules keep them safe as both.
func ValidateID(id string) error {
	if id == "" {
		return errors.Wrap(ErrInvalidID, "device id is empty; use 1 to 128 characters of [A-Za-z0-9_.-]")
	}
	if len(id) > maxIDLength {
		return errors.Wrapf(ErrInvalidID, "device id is %d characters long; the limit is %d", len(id), maxIDLength)
	}
	if id[0] == '.' || id[0] == '-' {
		return errors.Wrapf(ErrInvalidID, "device id %q starts with %q; start it with a letter, digit or '_'", id, id[0])
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '.', c == '-':
		default:
			return errors.Wrapf(ErrInvalidID, "device id %q contains %q at byte %d; only [A-Za-z0-9_.-] are allowed", id, c, i)
		}
	}
	return nil
}

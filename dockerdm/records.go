package dockerdm

import (
	"bytes"
	"encoding/json"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/errdefs"
)

// ErrCorrupt is returned for a file of the store that cannot be read as
// what Docker writes there. It matches errdefs.ErrCorrupt.
var ErrCorrupt = errdefs.New("docker store file is not what Docker writes", errdefs.ErrCorrupt)

// maxDeviceID is the largest thin device id the kernel accepts (24 bits).
const maxDeviceID = 1<<24 - 1

// DeviceRecord is one devicemapper/metadata/<hash> file: Docker's record
// of a thin device.
type DeviceRecord struct {
	// Hash names the device: a layer's cache-id, a container's mount-id
	// (and <mount-id>-init), or "base" (stored as "" by Docker).
	Hash string `json:"hash"`
	// DeviceID is the thin device's id in the pool.
	DeviceID uint32 `json:"device_id"`
	// Size is the device's size in bytes.
	Size uint64 `json:"size"`
	// TransactionID is Docker's transaction that created the device.
	TransactionID uint64 `json:"transaction_id"`
	// Initialized is what Docker says of the base device; not trusted.
	Initialized bool `json:"initialized"`
	// Deleted marks a device Docker meant to delete later (deferred deletion).
	Deleted bool `json:"deleted"`
}

// ParseDeviceRecord reads one metadata/<hash> record.
func ParseDeviceRecord(b []byte) (DeviceRecord, error) {
	var raw struct {
		DeviceID      *int64  `json:"device_id"`
		Size          *uint64 `json:"size"`
		TransactionID *uint64 `json:"transaction_id"`
		Initialized   bool    `json:"initialized"`
		Deleted       bool    `json:"deleted"`
	}
	if err := strictJSON(b, &raw); err != nil {
		return DeviceRecord{}, err
	}
	switch {
	case raw.DeviceID == nil:
		return DeviceRecord{}, errors.Wrap(ErrCorrupt, "no device_id")
	case *raw.DeviceID < 0 || *raw.DeviceID > maxDeviceID:
		return DeviceRecord{}, errors.Wrapf(ErrCorrupt, "device_id %d is not a 24-bit thin id", *raw.DeviceID)
	case raw.Size == nil:
		return DeviceRecord{}, errors.Wrap(ErrCorrupt, "no size")
	case raw.TransactionID == nil:
		return DeviceRecord{}, errors.Wrap(ErrCorrupt, "no transaction_id")
	}
	return DeviceRecord{
		DeviceID:      uint32(*raw.DeviceID),
		Size:          *raw.Size,
		TransactionID: *raw.TransactionID,
		Initialized:   raw.Initialized,
		Deleted:       raw.Deleted,
	}, nil
}

// DeviceSetMetadata is devicemapper/metadata/deviceset-metadata. Docker
// writes it when it sets up the base device and at a clean shutdown, so
// after a crash it is stale; NextDeviceID is reported, never used.
type DeviceSetMetadata struct {
	NextDeviceID         int64  `json:"next_device_id"`
	BaseDeviceUUID       string `json:"base_device_uuid"`
	BaseDeviceFilesystem string `json:"base_device_filesystem"`
}

// ParseDeviceSetMetadata reads deviceset-metadata.
func ParseDeviceSetMetadata(b []byte) (DeviceSetMetadata, error) {
	var raw struct {
		NextDeviceID         int64  `json:"next_device_id"`
		BaseDeviceUUID       string `json:"BaseDeviceUUID"`
		BaseDeviceFilesystem string `json:"BaseDeviceFilesystem"`
	}
	if err := strictJSON(b, &raw); err != nil {
		return DeviceSetMetadata{}, err
	}
	return DeviceSetMetadata(raw), nil
}

// TransactionMetadata is devicemapper/metadata/transaction-metadata:
// Docker's last transaction. It stays on disk after the transaction
// closed; it is open when OpenTransactionID is above the pool's
// transaction id.
type TransactionMetadata struct {
	OpenTransactionID uint64 `json:"open_transaction_id"`
	DeviceHash        string `json:"device_hash"`
	DeviceID          uint32 `json:"device_id"`
}

// ParseTransactionMetadata reads transaction-metadata.
func ParseTransactionMetadata(b []byte) (TransactionMetadata, error) {
	var raw struct {
		OpenTransactionID *uint64 `json:"open_transaction_id"`
		DeviceHash        string  `json:"device_hash"`
		DeviceID          int64   `json:"device_id"`
	}
	if err := strictJSON(b, &raw); err != nil {
		return TransactionMetadata{}, err
	}
	if raw.OpenTransactionID == nil {
		return TransactionMetadata{}, errors.Wrap(ErrCorrupt, "no open_transaction_id")
	}
	if raw.DeviceID < 0 || raw.DeviceID > maxDeviceID {
		return TransactionMetadata{}, errors.Wrapf(ErrCorrupt, "device_id %d is not a 24-bit thin id", raw.DeviceID)
	}
	return TransactionMetadata{OpenTransactionID: *raw.OpenTransactionID, DeviceHash: raw.DeviceHash, DeviceID: uint32(raw.DeviceID)}, nil
}

// strictJSON decodes one JSON object and nothing after it.
func strictJSON(b []byte, v any) error {
	t := bytes.TrimSpace(b)
	if len(t) == 0 || t[0] != '{' {
		return errors.Wrap(ErrCorrupt, "not a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(t))
	if err := dec.Decode(v); err != nil {
		return errdefs.Wrapf(ErrCorrupt, err, "bad JSON: %v", err)
	}
	if dec.More() {
		return errors.Wrap(ErrCorrupt, "data after the JSON object")
	}
	if _, err := dec.Token(); err == nil {
		return errors.Wrap(ErrCorrupt, "data after the JSON object")
	}
	return nil
}

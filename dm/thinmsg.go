package dm

import "strconv"

// The thin-pool target's messages, sent with Client.Message to the pool at
// sector 0 (the kernel's Documentation/admin-guide/device-mapper/
// thin-provisioning.rst). The kernel commits the pool's metadata after every
// message it accepts. Thin device ids are 24-bit.
//
// Errnos worth knowing: a create of an id in use is EEXIST (ErrExists), a
// delete of a missing id ENODATA (ErrNoData), a delete of an active thin
// device EBUSY (ErrBusy), and set_transaction_id with a wrong current id
// EINVAL.

// ThinCreate is "create_thin <id>": a new, empty thin device.
func ThinCreate(id uint32) string { return "create_thin " + u32(id) }

// ThinCreateSnap is "create_snap <id> <origin>": a snapshot of thin device
// origin, which must be suspended while it is active.
func ThinCreateSnap(id, origin uint32) string {
	return "create_snap " + u32(id) + " " + u32(origin)
}

// ThinDelete is "delete <id>": the thin device and its blocks go.
func ThinDelete(id uint32) string { return "delete " + u32(id) }

// ThinSetTransactionID is "set_transaction_id <current> <next>", a
// compare-and-swap of the pool's transaction id.
func ThinSetTransactionID(current, next uint64) string {
	return "set_transaction_id " + strconv.FormatUint(current, 10) + " " + strconv.FormatUint(next, 10)
}

// The messages that reserve and release the held metadata root: a
// read-only copy of the pool's metadata that userspace tools (thin_dump -m)
// read while the pool is live. Only one
// can be held; reserving a second is EINVAL.
const (
	ThinReserveMetadataSnap = "reserve_metadata_snap"
	ThinReleaseMetadataSnap = "release_metadata_snap"
)

func u32(n uint32) string { return strconv.FormatUint(uint64(n), 10) }

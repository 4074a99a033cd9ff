package failpoint

// Point is one named step where product code calls Inject or InjectErr.
type Point struct {
	// Name is what THINCTL_FAILPOINTS names, "<package>/<operation>/<step>".
	Name string
	// Where says in words what has happened when the point is reached.
	Where string
}

// The names of the points in thinpool; Points describes each.
const (
	InitAfterFiles    = "thinpool/init/after-files"
	InitAfterPool     = "thinpool/init/after-pool"
	InitAfterBase     = "thinpool/init/after-base"
	InitAfterMkfs     = "thinpool/init/after-mkfs"
	OpenAfterPoolUp   = "thinpool/open/after-pool-up"
	RegistryBeforeRen = "thinpool/registry/before-rename"
	RegistryAfterRen  = "thinpool/registry/after-rename"
	TxAfterSave       = "thinpool/tx/after-save"
	TxAfterMessage    = "thinpool/tx/after-message"
	TxAfterCommit     = "thinpool/tx/after-commit"
	SnapAfterSuspend  = "thinpool/snapshot/after-suspend"
	SnapBeforeResume  = "thinpool/snapshot/before-resume"
	CheckAfterReserve = "thinpool/check/after-reserve"
	ReturnAfterPunch  = "thinpool/return/after-punch"
	JournalAfterWrite = "thinpool/journal/after-write"
	CompactBeforeRen  = "thinpool/compact/before-rename"
	CompactAfterRen   = "thinpool/compact/after-rename"
	MigrateAfterJrnl  = "thinpool/migrate/after-journal"
	MigrateAfterSnap  = "thinpool/migrate/after-registry"
	MigrateAfterPool  = "thinpool/migrate/after-pool-json"

	Overlay2BeforePublish     = "overlay2/create/before-publish"
	Overlay2AfterPublish      = "overlay2/create/after-publish"
	Overlay2RemoveAfterRename = "overlay2/remove/after-rename"
	ActivateAfterLoad         = "thinpool/activate/after-load"
	MountAfterMount           = "thinpool/mount/after-mount"
	RemoveAfterUnmnt          = "thinpool/remove/after-unmount"
	RemoveAfterDeact          = "thinpool/remove/after-deactivate"
	RemoveAfterMark           = "thinpool/remove/after-mark-deleted"
	GrowAfterFiles            = "thinpool/grow/after-files"
	GrowAfterReload           = "thinpool/grow/after-reload"
	RepairAfterDown           = "thinpool/repair/after-down"
	RepairAfterRepair         = "thinpool/repair/after-repair"
	RepairAfterSwap           = "thinpool/repair/after-swap"
	ResizeAfterRecord         = "thinpool/resize/after-record"
)

// Points is every failpoint the product marks, in the order an operation
// meets them.
var Points = []Point{
	{InitAfterFiles, "pool init: the sparse data and metadata files exist, no loop device or pool yet"},
	{InitAfterPool, "pool init: the thin pool is loaded and active, no base device"},
	{InitAfterBase, "pool init: the base thin device exists in the pool and is active, no filesystem"},
	{InitAfterMkfs, "pool init: the base device has its filesystem, pool.json is not written"},
	{OpenAfterPoolUp, "open: the pool is up, interrupted transactions not yet finished"},
	{RegistryBeforeRen, "registry write: the new file is written and fsynced under a temporary name"},
	{RegistryAfterRen, "registry write: renamed into place, the directory not yet fsynced"},
	{TxAfterSave, "pool message: its begin frame is durable, the message is not sent (a create: in flight without the root lock)"},
	{TxAfterMessage, "pool message: the kernel committed the message, the registry is unchanged"},
	{TxAfterCommit, "pool message: the device record is written or removed, transaction.json not removed"},
	{SnapAfterSuspend, "snapshot: the active origin is suspended for create_snap"},
	{SnapBeforeResume, "snapshot: create_snap is done (or failed), the origin is still suspended (its error action makes the resume fail)"},
	{CheckAfterReserve, "check or space return: the pool's metadata root is held (reserve_metadata_snap) (its marker file written) and not yet released"},
	{JournalAfterWrite, "registry journal: a frame is written into the journal, not yet flushed (the begin of a transaction, its end, or a record change)"},
	{CompactBeforeRen, "registry compaction (pool down, or a full journal): the new registry file is written and fsynced under a temporary name"},
	{CompactAfterRen, "registry compaction: the new registry file (new epoch) is renamed into place, its directory not yet fsynced"},
	{MigrateAfterJrnl, "registry migration from version 1: the new journal exists; pool.json and the version 1 files are unchanged"},
	{MigrateAfterSnap, "registry migration: the registry file holds every version 1 record; pool.json still says version 1"},
	{MigrateAfterPool, "registry migration: pool.json says version 2; the version 1 files (devices/, transaction.json) are not yet removed"},
	{Overlay2BeforePublish, "overlay2 create: the layer is complete in its staging directory (fsynced), not yet renamed into place"},
	{Overlay2AfterPublish, "overlay2 create: the layer is renamed into place, its parent directory not yet fsynced"},
	{Overlay2RemoveAfterRename, "overlay2 remove: the layer's directory is renamed away (the rename on disk), its l/ link and files not yet deleted"},
	{ActivateAfterLoad, "activate: the device-mapper device is created with its table loaded, not resumed"},
	{MountAfterMount, "mount: the filesystem is mounted, the caller not told"},
	{RemoveAfterUnmnt, "remove: the device is unmounted, still active"},
	{RemoveAfterDeact, "remove: the device is deactivated (with discards on: the record marked deleted and the blocks discarded first); the thin device is not deleted"},
	{RemoveAfterMark, "remove: the record is marked deleted, the thin device not deleted"},
	{ReturnAfterPunch, "space return of an inactive removed device: the holes are punched in the pool's data file for its exclusive blocks, the thin device not yet deleted"},
	{GrowAfterFiles, "pool grow: the backing files are larger, the loop devices and pool not"},
	{GrowAfterReload, "pool grow: the pool table is reloaded at the new size, pool.json not saved"},
	{RepairAfterDown, "pool repair: the thin devices and the pool are deactivated, the metadata not yet checked"},
	{RepairAfterRepair, "pool repair: thin_repair wrote the new metadata to <name>.partial (checked and fsynced), pool.json still names the old"},
	{RepairAfterSwap, "pool repair: pool.json names the repaired metadata, still <name>.partial on disk; the pool is down"},
	{ResizeAfterRecord, "device resize: the record holds the new size, an active device's table is not reloaded"},
}

// Known reports whether name is one of Points.
func Known(name string) bool {
	for _, p := range Points {
		if p.Name == name {
			return true
		}
	}
	return false
}

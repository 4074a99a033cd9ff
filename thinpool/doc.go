// Package thinpool is thinctl's storage engine: a device-mapper thin pool
// kept under a state directory, with a base device carrying a filesystem,
// thin snapshots of it (and of each other) as devices, and a registry of
// those devices (a journal of checksummed frames beside a compacted file).
//
// # Layout
//
// Everything lives under the root given to Init and Open:
//
//	<root>/devicemapper/data             sparse data file (loop device), default 100 GiB
//	<root>/devicemapper/metadata         sparse metadata file (loop device), default 2 GiB
//	<root>/devicemapper/pool.json        pool configuration and the base device
//	<root>/devicemapper/registry         every device record as of the last compaction
//	<root>/devicemapper/journal          changes since then, one checksummed frame each
//	<root>/devicemapper/lock             flock serialising writers of the root
//	<root>/devicemapper/metadata-snapshot present while Check or a space reclaim holds the held metadata root
//	<root>/mnt/<id>                      where Mount mounts device <id>
//
// docs/registry.md describes the files byte by byte (and version 1, one
// JSON file per device, which Open converts). pool.json, registry, journal
// and lock are the store's (package thinpool/internal/store: records,
// journal, compaction, transactions' entries, group commit, the lock and
// its claims, migration); Pool reaches them only through its methods.
//
// # Naming
//
// The pool is the device-mapper device "thinctl-<maj>:<min>-<ino>-pool",
// from the device and inode of the root directory, so two roots never
// clash; a thin device is "thinctl-<maj>:<min>-<ino>-<thin id>" with the
// uuid "THINCTL-<maj>:<min>-<ino>-<thin id>", whatever its registry id.
//
// # Consistency
//
// Every create_thin, create_snap and delete message runs in a transaction
// (a begin frame, flushed, before the message, carrying a create's new
// record; an end frame, not flushed, after it; the kernel commits the
// pool's metadata after each message), so Open can keep, undo or finish an
// interrupted one, asking the pool whether a create's id exists. Open also
// resumes devices a crash left suspended mid-snapshot and removes the
// empty mount points a reboot leaves behind (tests/reliability crashes
// thinctl at every internal/failpoint marker to check this). Busy devices
// are removed lazily: the kernel removes the mapping on last close
// (deferred remove) and the registry record stays marked deleted until GC
// or the next Open deletes the thin device. A full pool fails writes at
// once (error_if_no_space) and Create refuses to add devices when free
// space falls under Options.MinFreeSpace.
//
// # The host filesystem and the pool watcher
//
// A loop pool's metadata file is allocated on its host filesystem at Init
// and when Grow grows it, so a full host filesystem cannot fail a metadata
// commit; the data file stays sparse unless Preallocate allocates it, and
// HostSpace says what the pool may still take from its host. Package
// thinpool/watch guards a pool for a long-running process (watch.Run): it
// sleeps on the kernel's pool events (Pool.EventNr, Pool.WaitEvent), grows
// data and metadata as a pure watch.Policy decides, tunes the pool table
// (Pool.SetTableTuning, Pool.Retune), and reports through a *slog.Logger
// and a callback, never on stdout or stderr.
//
// # Contexts and clients
//
// Every call that can block takes a context first: waits for udev, busy
// retries, loop attach and detach, mkfs and resize, thin_dump and
// whole-device discards end when it does, and the call returns the
// context's error wrapped. What a stopped call leaves follows the
// transaction rules above: nothing half made (Init leaves no state, Create
// resumes a suspended parent, a Remove stopped after marking the record
// deleted is finished by GC). Undo steps still run their kernel operations.
//
// A Pool uses dm.Default() unless Options.DM / OpenOptions.DM hands it a
// client of the caller's (dm.Open), with its own logger and udev timeout.
//
// driver/devicemapper puts a Pool behind the driver package's interface
// (the "devicemapper" backend); thinpool itself imports no driver code.
//
// # Where each concept lives
//
//	pool.go, pool_device.go   Init, Open, Down, Destroy; the pool device, its loop files
//	devices.go, mount.go      Create (and its suspended origin), activation, mounts
//	transaction.go            a pool message in a transaction; recovery of one left open
//	remove.go                 Remove, deferred removal, GC
//	resize.go, grow.go        Resize of one device (record, then table), GrowFS; Grow
//	remove_return.go          reclaiming a removed device's space: reclaim, the
//	                          background pass, retryBusy for the pool's EBUSY windows
//	remove_inactive.go        reclaiming an inactive device without activating it
//	check.go                  Check
//	health.go, hostspace.go   Health and HostSpace: the readings (classified in
//	                          internal/health, measured by internal/hostfs)
//	repair*.go, fsck.go       Repair (the swap: internal/metaswap), Fsck
//	tuning.go                 what a watcher asks of the pool table, pool events
//	watch                     the pool watcher (public: watch.Run, watch.Policy)
//	internal/store            the durable store: records, pool.json, the registry
//	                          file and journal, compaction, the lock and its claims,
//	                          group commit, migration, every format version
//	internal/dmthin           thin-pool and thin table and status lines
//	internal/dmname           the device-mapper names and uuids of a root
//	internal/devnode          removal past udev's workers, private nodes, I/O probes
//	internal/health           classes and fixes of an unhealthy pool
//	internal/hostfs           the host filesystem under loop files (statfs, fallocate)
//	internal/poolmeta         the held metadata root and reading it
//	internal/metaswap         where repaired metadata goes and how it is swapped in
//	internal/thintools        thin_check, thin_repair, thin_dump and its XML
//	internal/fserrors         devices with filesystem errors
//	internal/bytesize         byte rounding and formatting for messages
//
// Undo of a multi-step operation that stopped part way goes through
// internal/revert; Options.Logger is told the background decisions.
package thinpool

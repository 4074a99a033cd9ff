package dm

// KernelVersion is the device-mapper ioctl interface version the kernel reports.
type KernelVersion struct{ Major, Minor, Patch uint32 }

// String formats the version as major.minor.patch.
func (v KernelVersion) String() string {
	return itoa(v.Major) + "." + itoa(v.Minor) + "." + itoa(v.Patch)
}

// atLeast reports whether v's minor is at least minor (within major 4).
func (v KernelVersion) atLeast(minor uint32) bool { return v.Major == 4 && v.Minor >= minor }

// Ioctl interface minors that gate optional features.
const (
	minorDeferredRemove = 27 // DM_DEFERRED_REMOVE, @cancel_deferred_remove
	minorArmPoll        = 37 // DM_DEV_ARM_POLL; event_nr and flags in name lists
)

// Target is one line of a device-mapper table: Start and Length in 512-byte
// sectors, the target Type ("thin-pool", "thin", "linear", ...) and its
// parameters. In Status results Params holds the status line instead.
//
// LoadTable sends Params with every backslash doubled, so the kernel sees
// the string as written; it still splits Params on white space, so refer to
// devices whose paths contain spaces by their major:minor numbers.
type Target struct {
	Start  uint64
	Length uint64
	Type   string
	Params string
}

// Info describes one mapped device as DM_DEV_STATUS reports it.
type Info struct {
	Name           string
	UUID           string
	Dev            uint64 // unix.Mkdev(major, minor)
	OpenCount      int32
	EventNr        uint32
	TargetCount    uint32
	Suspended      bool
	ReadOnly       bool
	LiveTable      bool
	InactiveTable  bool
	DeferredRemove bool // a deferred removal is pending until the last close
}

// Device is one entry of ListDevices.
type Device struct {
	Name string
	UUID string // empty when the device has none or the kernel does not report uuids in lists
	Dev  uint64
}

// TargetVersion is one entry of ListTargetVersions.
type TargetVersion struct {
	Name                string
	Major, Minor, Patch uint32
}

// CreateOptions tunes Create. The zero value creates a device with no uuid.
type CreateOptions struct {
	UUID string
}

// LoadOptions tunes LoadTable.
type LoadOptions struct {
	ReadOnly bool
}

// ResumeOptions tunes ResumeWith.
type ResumeOptions struct {
	// NoDiskRules asks udev's device-mapper rules to skip their disk rules
	// for this event (DM_UDEV_DISABLE_DISK_RULES_FLAG): no blkid probe, no
	// /dev/disk/by-id, by-uuid or by-label links and no inotify watch of the
	// device; /dev/mapper/<name> is made all the same, sooner (the probe
	// reads the device before udev links anything). For devices whose
	// contents are not identities of their own, such as snapshots of one
	// filesystem, which all carry its UUID. Without udev it changes nothing.
	NoDiskRules bool
}

// SuspendOptions tunes Suspend.
type SuspendOptions struct {
	NoFlush    bool // do not flush queued I/O (DM_NOFLUSH_FLAG)
	SkipLockfs bool // do not freeze a mounted filesystem (DM_SKIP_LOCKFS_FLAG)
}

// RemoveOptions tunes Remove. The zero value retries EBUSY a few times with
// backoff and then returns ErrBusy.
type RemoveOptions struct {
	// Deferred asks the kernel to remove the device on its last close when
	// it is busy now; Remove then succeeds and Info reports DeferredRemove.
	Deferred bool
	// Retries bounds the EBUSY retries (0 means the default, negative none).
	Retries int
	// NoNodeWait returns once the kernel removed the device, without
	// waiting for udev to drop /dev/mapper/<name> (for a caller that does
	// not look at the name again). Without udev the node is still deleted
	// here (an unlink). Only the removal may skip the wait: udev handles a
	// device's events in order, so a late "remove" only drops the old
	// device's links, but a "change" (resume) handled after the device is
	// gone and its minor reused reads the new device's name from sysfs,
	// links it, and the old device's "remove" then unlinks it again (seen
	// in the VM: thinpool's remove_udev_vm_test.go).
	NoNodeWait bool
}

// TableOptions tunes Table.
type TableOptions struct {
	Inactive bool // read the inactive (loaded, not yet resumed) table
}

// StatusOptions tunes Status.
type StatusOptions struct {
	// NoFlush sets DM_NOFLUSH_FLAG. Targets that would otherwise flush
	// first skip it: a thin-pool commits its metadata before reporting
	// unless this is set, so every status read without it is a metadata
	// commit (a disk flush). The counters reported are the in-core ones
	// either way.
	NoFlush bool
}

func itoa(v uint32) string {
	if v == 0 {
		return "0"
	}
	var b [10]byte
	i := len(b)
	for v > 0 {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return string(b[i:])
}

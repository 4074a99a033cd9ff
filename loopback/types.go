package loopback

// Options tunes Attach. The zero value attaches read-write, without
// autoclear and with buffered I/O.
type Options struct {
	// ReadOnly opens the backing file read-only and binds the device
	// read-only (LO_FLAGS_READ_ONLY).
	ReadOnly bool
	// Autoclear lets the kernel detach the device on its last close
	// (LO_FLAGS_AUTOCLEAR). Only AttachOpen accepts it; see the package
	// documentation.
	Autoclear bool
	// DirectIO makes the loop device bypass the page cache of the backing
	// file (LO_FLAGS_DIRECT_IO). Attach fails with ErrNotSupported when the
	// backing filesystem cannot do direct I/O (tmpfs on older kernels).
	DirectIO bool
}

// Info describes a bound loop device.
type Info struct {
	Path         string // /dev/loopN
	Number       int    // N, from lo_number
	Dev          uint64 // device number of /dev/loopN (unix.Mkdev)
	BackingFile  string // from lo_file_name (may be truncated at 63 bytes by the kernel)
	BackingDev   uint64 // st_dev of the backing file
	BackingInode uint64 // st_ino of the backing file
	Offset       uint64 // byte offset into the backing file
	SizeLimit    uint64 // bytes, 0 means up to the end of the file
	ReadOnly     bool   // LO_FLAGS_READ_ONLY
	Autoclear    bool   // LO_FLAGS_AUTOCLEAR
	DirectIO     bool   // LO_FLAGS_DIRECT_IO
}

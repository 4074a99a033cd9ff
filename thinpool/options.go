package thinpool

import (
	"log/slog"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/dm"
	"github.com/thinctl/thinctl/fs"
	"github.com/thinctl/thinctl/thinpool/internal/bytesize"
)

// Size units.
const (
	KiB uint64 = 1 << 10
	MiB uint64 = 1 << 20
	GiB uint64 = 1 << 30
)

// Defaults and limits of Options.
const (
	DefaultDataSize     = 100 * GiB
	DefaultMetadataSize = 2 * GiB
	DefaultBlockSize    = 64 * KiB
	DefaultBaseSize     = 10 * GiB
	DefaultMinFreeSpace = 10.0

	MinBlockSize    = 64 * KiB
	MaxBlockSize    = 1 * GiB
	MinMetadataSize = 2 * MiB
	// MaxMetadataSize is the most metadata a thin pool uses (the kernel
	// ignores anything beyond 255 * 2^14 * 8 sectors, about 15.9 GiB).
	MaxMetadataSize = 255 * (1 << 14) * 8 * 512
)

// Options configures Init. Zero fields take the documented defaults.
type Options struct {
	DataSize     uint64  // default 100 GiB (sparse loop file)
	MetadataSize uint64  // default 2 GiB
	BlockSize    uint64  // bytes; default 64 KiB; 64 KiB..1 GiB, multiple of 64 KiB
	BaseSize     uint64  // default 10 GiB
	Filesystem   fs.Type // default ext4
	MkfsArgs     []string
	MountOptions []string
	// MinFreeSpace is the percentage of data and of metadata space that
	// must stay free for Create to make a device (below it Create fails
	// with ErrLowSpace, so that a filling pool stops early instead of
	// failing writes). 0 means DefaultMinFreeSpace (10); for no minimum
	// set NoMinFreeSpace.
	MinFreeSpace float64
	// NoMinFreeSpace turns the minimum off: Create is refused only when the
	// pool is out of data space.
	NoMinFreeSpace bool
	DataDevice     string // raw block device instead of a loop file
	MetadataDevice string
	ThinPoolDevice string // existing thin-pool dm name; used, never deactivated
	NoDiscard      bool   // skip discards on remove
	// Progress, when set, is called with a short description and a
	// fraction in [0,1] during long work; it must not block.
	Progress func(step string, fraction float64)
	// DM is the device-mapper client the pool uses; nil means dm.Default().
	// Give a client from dm.Open for a logger or udev timeout of your own.
	// The pool does not close it.
	DM *dm.Client
	// Logger, when set, is told the pool's background decisions at debug
	// level: how each removed device's space is reclaimed (and why a
	// fallback), each background pass's outcome, each interrupted
	// transaction's recovery. nil logs nothing.
	Logger *slog.Logger
}

// OpenOptions tunes Open. The zero value works.
type OpenOptions struct {
	// Progress is as in Options.
	Progress func(step string, fraction float64)
	// DM is the device-mapper client the pool uses; nil means dm.Default().
	// The pool does not close it.
	DM *dm.Client
	// Logger is as in Options.
	Logger *slog.Logger
}

// CreateOptions tunes Create.
type CreateOptions struct {
	Size uint64 // bytes; 0 = the parent's size; otherwise at least the parent's
	// Labels are stored in the device's record, written with it in one
	// atomic write (see Pool.SetLabels).
	Labels map[string]string
}

// MountOptions tunes Mount.
type MountOptions struct {
	Options    []string // added to the pool's configured mount options
	MountLabel string
}

// GrowOptions tunes Grow; a zero field leaves that size unchanged.
type GrowOptions struct {
	DataSize     uint64
	MetadataSize uint64
}

// CheckOptions tunes Check.
type CheckOptions struct {
	Repair bool
}

// withDefaults returns opts with zero fields filled in and every value
// checked; errors wrap ErrInvalidSize or name the bad field.
func (o Options) withDefaults() (Options, error) {
	if o.DataSize == 0 {
		o.DataSize = DefaultDataSize
	}
	if o.MetadataSize == 0 {
		o.MetadataSize = DefaultMetadataSize
	}
	if o.BlockSize == 0 {
		o.BlockSize = DefaultBlockSize
	}
	if o.BaseSize == 0 {
		o.BaseSize = DefaultBaseSize
	}
	if o.Filesystem == "" {
		o.Filesystem = fs.Ext4
	}
	if o.NoMinFreeSpace && o.MinFreeSpace != 0 {
		return o, errors.Wrapf(ErrInvalidSize, "minimum free space %.1f%% given with NoMinFreeSpace; choose one", o.MinFreeSpace)
	}
	if o.MinFreeSpace == 0 && !o.NoMinFreeSpace {
		o.MinFreeSpace = DefaultMinFreeSpace
	}
	if err := validateBlockSize(o.BlockSize); err != nil {
		return o, err
	}
	if o.Filesystem != fs.Ext4 && o.Filesystem != fs.XFS {
		return o, errors.Wrapf(fs.ErrUnsupportedType, "filesystem %q: use ext4 or xfs", o.Filesystem)
	}
	if o.MinFreeSpace < 0 || o.MinFreeSpace >= 100 {
		return o, errors.Errorf("minimum free space %.1f%% is outside 0..100", o.MinFreeSpace)
	}
	if (o.DataDevice == "") != (o.MetadataDevice == "") {
		return o, errors.New("give both a data device and a metadata device, or neither")
	}
	if o.ThinPoolDevice != "" && o.DataDevice != "" {
		return o, errors.New("an existing thin-pool device and raw data/metadata devices exclude each other")
	}
	if o.ThinPoolDevice == "" && o.DataDevice == "" {
		if o.DataSize < 16*o.BlockSize {
			return o, errors.Wrapf(ErrInvalidSize, "data size %s is smaller than 16 blocks of %s", bytesize.Format(o.DataSize), bytesize.Format(o.BlockSize))
		}
		if err := validateMetadataSize(o.MetadataSize); err != nil {
			return o, err
		}
	}
	o.BaseSize = bytesize.RoundUp(o.BaseSize, 4*KiB)
	return o, nil
}

func validateBlockSize(bs uint64) error {
	if bs < MinBlockSize || bs > MaxBlockSize || bs%MinBlockSize != 0 {
		return errors.Wrapf(ErrInvalidSize, "block size %d bytes: use a multiple of 64 KiB between 64 KiB and 1 GiB", bs)
	}
	return nil
}

func validateMetadataSize(n uint64) error {
	if n < MinMetadataSize || n > MaxMetadataSize {
		return errors.Wrapf(ErrInvalidSize, "metadata size %s: use between 2 MiB and %s", bytesize.Format(n), bytesize.Format(MaxMetadataSize))
	}
	return nil
}

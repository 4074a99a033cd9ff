package dm

import (
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/errdefs"
)

// Buffer sizes for commands that return data: zero-filled, starting at
// initialBuffer and doubled while the kernel reports DM_BUFFER_FULL_FLAG.
const (
	initialBuffer = 16 << 10
	maxBuffer     = 64 << 20
)

// ioctlFunc issues one DM_* ioctl on fd with buf as its argument. Tests
// replace it with a fake kernel.
type ioctlFunc func(fd int, cmd uint, buf []byte) error

func sysIoctl(fd int, cmd uint, buf []byte) error {
	for {
		_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(cmd), uintptr(unsafe.Pointer(&buf[0])))
		switch e {
		case 0:
			return nil
		case unix.EINTR:
			continue
		}
		return e
	}
}

// Client talks to /dev/mapper/control. One Client per process is enough;
// its methods are safe for concurrent use (the kernel serialises what needs
// serialising; ioctls on one control fd may run concurrently).
type Client struct {
	mu      sync.RWMutex // held for reading around every ioctl, for writing by Close
	fd      int          // -1 once closed
	ioctl   ioctlFunc
	version KernelVersion // as reported when the client was opened

	controlPath string // /dev/mapper/control
	devDir      string // where nodes are made: /dev/mapper
	udevControl string // exists while udev runs: /run/udev/control
	kmsgPath    string // /dev/kmsg, for the kernel's reasons

	kmsgMu     sync.Mutex
	kmsgIdle   []int // open /dev/kmsg descriptors not in use (kmsg.go)
	kmsgClosed bool  // Close was called: keep no more

	udevTimeout   atomic.Int64  // nanoseconds; see SetUdevTimeout
	removeBackoff time.Duration // first sleep between EBUSY retries
	noArmPoll     bool          // tests: force WaitEvent's polling fallback

	logger atomic.Pointer[func(format string, args ...any)]
	shared bool // the Default client: Close leaves it open
}

var (
	defaultMu     sync.Mutex
	defaultClient *Client
)

// Options configures a Client made by Open. The zero value is what Default
// uses: no logging, DefaultUdevTimeout.
type Options struct {
	// Logger, when set, receives one line per kernel operation (operation,
	// device, result, duration), e.g. for a --debug flag.
	Logger func(format string, args ...any)
	// UdevTimeout bounds how long Resume, Remove and Rename wait for udev
	// to make or drop a /dev/mapper node; 0 means DefaultUdevTimeout. A
	// caller's context can end the wait sooner.
	UdevTimeout time.Duration
}

// Open returns a new, independent Client on /dev/mapper/control (creating
// the node when it is missing): its logger and udev timeout are its own, and
// closing it affects no other Client. Close it when done.
func Open(opts Options) (*Client, error) {
	c, err := open(controlNode)
	if err != nil {
		return nil, err
	}
	c.SetLogger(opts.Logger)
	c.SetUdevTimeout(opts.UdevTimeout)
	return c, nil
}

// Default returns a Client shared by every caller in the process that has
// no Client of its own, opening it on first use (a failed first use is
// retried on the next call). Its Close does nothing; a program that wants a
// logger or a udev timeout of its own uses Open instead of changing it.
func Default() (*Client, error) {
	defaultMu.Lock()
	defer defaultMu.Unlock()
	if defaultClient != nil {
		return defaultClient, nil
	}
	c, err := open(controlNode)
	if err != nil {
		return nil, err
	}
	c.shared = true
	defaultClient = c
	return c, nil
}

const (
	controlNode     = mapperDir + "/control"
	udevControlPath = "/run/udev/control"
)

func newClient() *Client {
	c := &Client{
		fd:            -1,
		ioctl:         sysIoctl,
		controlPath:   controlNode,
		devDir:        mapperDir,
		udevControl:   udevControlPath,
		kmsgPath:      "/dev/kmsg",
		removeBackoff: 60 * time.Millisecond,
	}
	c.SetUdevTimeout(DefaultUdevTimeout)
	return c
}

// open opens the control node at path and reads the kernel's version.
func open(path string) (*Client, error) {
	if err := ensureControl(path); err != nil {
		return nil, err
	}
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, controlError(path, err)
	}
	c := newClient()
	c.fd, c.controlPath = fd, path
	v, err := c.Version()
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	if v.Major != 4 {
		unix.Close(fd)
		return nil, errors.Wrapf(ErrNotSupported, "dm: kernel speaks device-mapper ioctl version %s; only 4.x is supported", v)
	}
	c.version = v
	return c, nil
}

func controlError(path string, err error) error {
	switch err {
	case unix.EACCES, unix.EPERM:
		return errdefs.Wrapf(ErrPermission, err, "dm: open %s: %v (run as root)", path, err)
	case unix.ENOENT, unix.ENXIO, unix.ENODEV:
		return errdefs.Wrapf(ErrNotSupported, err, "dm: open %s: %v (is the dm-mod module loaded?)", path, err)
	}
	return errors.Wrapf(err, "dm: open %s", path)
}

// Close releases a Client made by Open; later calls on it fail. Close of the
// Default client does nothing, so that one user cannot break the others.
func (c *Client) Close() error {
	if c.shared {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fd < 0 {
		return nil
	}
	err := unix.Close(c.fd)
	c.fd = -1
	c.closeKmsg()
	return errors.Wrap(err, "dm: close control node")
}

// SetLogger installs a function that receives one line per kernel operation
// (operation, device, result, duration), e.g. for a --debug flag. nil, the
// default, disables logging. It changes this Client only; on the Default
// client that is every user's, so prefer Open with Options.Logger.
func (c *Client) SetLogger(logf func(format string, args ...any)) {
	if logf == nil {
		c.logger.Store(nil)
		return
	}
	c.logger.Store(&logf)
}

func (c *Client) logf(format string, args ...any) {
	if p := c.logger.Load(); p != nil {
		(*p)(format, args...)
	}
}

// DefaultUdevTimeout bounds how long Resume, Remove and Rename wait for udev
// to make or drop a /dev/mapper node. udev normally takes milliseconds; the
// bound is generous for event storms at boot and for emulated machines.
const DefaultUdevTimeout = 30 * time.Second

// SetUdevTimeout changes how long this Client waits for udev's nodes (d <= 0
// restores DefaultUdevTimeout); prefer Open with Options.UdevTimeout.
func (c *Client) SetUdevTimeout(d time.Duration) {
	if d <= 0 {
		d = DefaultUdevTimeout
	}
	c.udevTimeout.Store(int64(d))
}

// KernelVersion returns the version read when the client was opened.
func (c *Client) KernelVersion() KernelVersion { return c.version }

// Version asks the kernel for its device-mapper ioctl version.
func (c *Client) Version() (KernelVersion, error) {
	rep, err := c.run("version", unix.DM_VERSION, request{global: true})
	if err != nil {
		return KernelVersion{}, err
	}
	v := rep.hdr.Version
	return KernelVersion{v[0], v[1], v[2]}, nil
}

// request is one ioctl's input.
type request struct {
	dev         ref
	global      bool   // the command acts on no device (version, lists, arm poll)
	newUUID     string // DM_DEV_CREATE: the uuid to give the new device
	flags       uint32
	eventNr     uint32
	targetCount uint32
	payload     []byte // the data area, placed at data_start
	out         bool   // the command returns data: start big, grow on DM_BUFFER_FULL_FLAG
	table       bool   // EINVAL means ErrInvalidTable
	naming      bool   // EBUSY means the name or uuid is taken: ErrExists
	fd          *int   // another control fd than the client's (WaitEvent's own)
}

// reply is one ioctl's output.
type reply struct {
	hdr header
	buf []byte
}

func (r *reply) data() ([]byte, error) { return r.hdr.data(r.buf) }

// run validates the request, issues the ioctl with a zero-filled buffer and,
// for commands that return data, doubles the buffer and retries while the
// kernel reports DM_BUFFER_FULL_FLAG.
func (c *Client) run(op string, cmd uint, req request) (*reply, error) {
	if !req.global {
		if err := req.dev.validate(); err != nil {
			return nil, err
		}
	}
	size := headerSize + len(req.payload)
	if req.out && size < initialBuffer {
		size = initialBuffer
	}
	start := time.Now()
	for {
		rep, full, err := c.once(cmd, req, size)
		if err != nil {
			c.logf("dm: %s %s: %v (%s)", op, req.dev, err, time.Since(start))
			return nil, opError(op, req.dev, err, req.table, req.naming)
		}
		if !full || !req.out {
			c.logf("dm: %s %s: ok (%s)", op, req.dev, time.Since(start))
			return rep, nil
		}
		if size >= maxBuffer {
			return nil, errors.Errorf("dm: %s %s: reply does not fit in %d bytes", op, req.dev, maxBuffer)
		}
		size *= 2
	}
}

// runOn is run on a control fd of the caller's.
func (c *Client) runOn(fd int, op string, cmd uint, req request) (*reply, error) {
	req.fd = &fd
	return c.run(op, cmd, req)
}

// once issues the ioctl with a buffer of size bytes and reports whether the
// kernel said the buffer was too small.
func (c *Client) once(cmd uint, req request, size int) (*reply, bool, error) {
	buf := make([]byte, size)
	h := header{
		Version:     sendVersion,
		DataSize:    uint32(size),
		DataStart:   headerSize,
		TargetCount: req.targetCount,
		Flags:       req.flags,
		EventNr:     req.eventNr,
		Dev:         req.dev.dev,
		Name:        req.dev.name,
		UUID:        req.dev.uuid,
	}
	if req.newUUID != "" {
		h.UUID = req.newUUID
	}
	h.encode(buf)
	copy(buf[headerSize:], req.payload)
	c.mu.RLock()
	fd := c.fd
	if req.fd != nil {
		fd = *req.fd
	}
	err := c.ioctl(fd, cmd, buf) // fd -1 after Close: EBADF, never a reused fd
	c.mu.RUnlock()
	if err != nil {
		return nil, false, err
	}
	hdr, err := decodeHeader(buf)
	if err != nil {
		return nil, false, err
	}
	return &reply{hdr: hdr, buf: buf}, hdr.Flags&unix.DM_BUFFER_FULL_FLAG != 0, nil
}

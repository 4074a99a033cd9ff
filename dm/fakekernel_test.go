package dm

import (
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fakeKernel answers DM_* ioctls from memory the way the kernel lays out its
// replies, so that the client's buffer handling runs without device-mapper.
type fakeKernel struct {
	mu       sync.Mutex
	minor    uint32
	devices  []Device
	targets  []Target // what TABLE_STATUS returns
	versions []TargetVersion
	deps     []uint64
	reply    string // TARGET_MSG reply
	errs     map[uint][]error
	calls    []fakeCall
	handle   func(cmd uint, h header, buf []byte) error // extra behaviour
}

type fakeCall struct {
	cmd  uint
	size int
	hdr  header
}

func (k *fakeKernel) ioctl(fd int, cmd uint, buf []byte) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	h, err := decodeHeader(buf)
	if err != nil {
		return unix.EFAULT
	}
	k.calls = append(k.calls, fakeCall{cmd: cmd, size: len(buf), hdr: h})
	if int(h.DataSize) != len(buf) {
		return unix.EINVAL
	}
	ne.PutUint32(buf[offVersion:], 4)
	ne.PutUint32(buf[offVersion+4:], k.minor)
	ne.PutUint32(buf[offVersion+8:], 0)
	if q := k.errs[cmd]; len(q) > 0 {
		k.errs[cmd] = q[1:]
		if q[0] != nil {
			return q[0]
		}
	}
	if k.handle != nil {
		if err := k.handle(cmd, h, buf); err != nil {
			return err
		}
	}
	var data []byte
	switch cmd {
	case unix.DM_LIST_DEVICES:
		data = kernelNameList(k.devices, h.Flags&unix.DM_UUID_FLAG != 0, k.minor >= minorArmPoll)
	case unix.DM_TABLE_STATUS:
		data = kernelSpecs(k.targets)
		ne.PutUint32(buf[offTargetCount:], uint32(len(k.targets)))
	case unix.DM_LIST_VERSIONS:
		data = kernelVersions(k.versions)
	case unix.DM_TABLE_DEPS:
		data = kernelDeps(k.deps)
	case unix.DM_TARGET_MSG:
		if k.reply != "" {
			data = append([]byte(k.reply), 0)
			ne.PutUint32(buf[offFlags:], h.Flags|unix.DM_DATA_OUT_FLAG)
		}
	default:
		return nil
	}
	if len(data) == 0 {
		return nil
	}
	if headerSize+len(data) > len(buf) {
		ne.PutUint32(buf[offFlags:], h.Flags|unix.DM_BUFFER_FULL_FLAG)
		return nil
	}
	copy(buf[headerSize:], data)
	ne.PutUint32(buf[offDataSize:], uint32(headerSize+len(data)))
	return nil
}

// fakeClient returns a client wired to k, with nodes under a temp dir and
// no udev.
func fakeClient(t *testing.T, k *fakeKernel) *Client {
	t.Helper()
	if k.minor == 0 {
		k.minor = 47
	}
	if k.errs == nil {
		k.errs = map[uint][]error{}
	}
	c := newClient()
	c.ioctl = k.ioctl
	c.version = KernelVersion{4, k.minor, 0}
	c.devDir = t.TempDir()
	c.udevControl = c.devDir + "/no-udev-here"
	c.kmsgPath = ""
	c.removeBackoff = time.Millisecond
	return c
}

// kernelNameList lays out devices as DM_LIST_DEVICES does: records of
// {dev, next, name NUL} aligned to 8, with event_nr, flags and the uuid after
// the name when extras is set.
func kernelNameList(devs []Device, uuids, extras bool) []byte {
	var b []byte
	for i, d := range devs {
		start := len(b)
		rec := make([]byte, nameListHdrSize+len(d.Name)+1)
		ne.PutUint64(rec, d.Dev)
		copy(rec[nameListHdrSize:], d.Name)
		b = append(b, rec...)
		b = pad8(b)
		if extras {
			x := make([]byte, 8)
			ne.PutUint32(x, uint32(i))
			var flags uint32
			if uuids && d.UUID != "" {
				flags = unix.DM_NAME_LIST_FLAG_HAS_UUID
			} else if uuids {
				flags = unix.DM_NAME_LIST_FLAG_DOESNT_HAVE_UUID
			}
			ne.PutUint32(x[4:], flags)
			b = append(b, x...)
			if flags == unix.DM_NAME_LIST_FLAG_HAS_UUID {
				b = pad8(append(b, append([]byte(d.UUID), 0)...))
			}
		}
		if i+1 < len(devs) {
			ne.PutUint32(b[start+8:], uint32(len(b)-start))
		}
	}
	return b
}

// kernelSpecs lays out targets as TABLE_STATUS output: next is the offset of
// the following spec from the first one.
func kernelSpecs(ts []Target) []byte {
	var b []byte
	for _, t := range ts {
		start := len(b)
		s := make([]byte, specSize)
		ne.PutUint64(s[specOffStart:], t.Start)
		ne.PutUint64(s[specOffLength:], t.Length)
		copy(s[specOffType:specOffType+typeLen-1], t.Type)
		b = append(b, s...)
		b = pad8(append(b, append([]byte(t.Params), 0)...))
		ne.PutUint32(b[start+specOffNext:], uint32(len(b)))
	}
	return b
}

func kernelVersions(vs []TargetVersion) []byte {
	var b []byte
	for i, v := range vs {
		start := len(b)
		r := make([]byte, versionsHdrSize)
		ne.PutUint32(r[4:], v.Major)
		ne.PutUint32(r[8:], v.Minor)
		ne.PutUint32(r[12:], v.Patch)
		b = pad8(append(append(b, r...), append([]byte(v.Name), 0)...))
		if i+1 < len(vs) {
			ne.PutUint32(b[start:], uint32(len(b)-start))
		}
	}
	return b
}

func kernelDeps(devs []uint64) []byte {
	b := make([]byte, depsHdrSize+8*len(devs))
	ne.PutUint32(b, uint32(len(devs)))
	for i, d := range devs {
		ne.PutUint64(b[depsHdrSize+8*i:], d)
	}
	return b
}

func pad8(b []byte) []byte {
	for len(b)%8 != 0 {
		b = append(b, 0)
	}
	return b
}

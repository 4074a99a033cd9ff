package dm

import (
	"strings"

	"golang.org/x/sys/unix"
)

// The kernel answers a bad table (and many failed target messages) with a
// bare errno; the reason is only in the kernel log. kmsgCursor marks the end
// of /dev/kmsg before an ioctl so that the records logged by it can be read
// afterwards. Everything here is best effort: any failure just means no
// reason, and reading never blocks (O_NONBLOCK) and is bounded.
//
// Opening /dev/kmsg allocates the reader's state in the kernel and checks
// the syslog permission: about half a millisecond under emulation, paid
// before every message and table load although it is only read when one
// fails. A Client keeps the descriptors it is done with (up to
// kmsgIdleMax, one per ioctl running at once) and positions a kept one at
// the log's end again (lseek SEEK_END, a few microseconds) for the next.

const (
	kmsgMaxRecords = 256
	kmsgRecordSize = 8192 // a read smaller than the record fails with EINVAL
	kmsgMaxReason  = 1024
	kmsgIdleMax    = 4
)

// kmsgCursor is one open /dev/kmsg positioned where an ioctl began.
type kmsgCursor struct {
	fd int
	c  *Client // gets the descriptor back
}

// markKmsg returns the kernel log positioned after its last record, from a
// descriptor this Client kept or a new one; nil when it cannot be opened.
func (c *Client) markKmsg() *kmsgCursor {
	if c.kmsgPath == "" {
		return nil
	}
	fd := -1
	c.kmsgMu.Lock()
	if n := len(c.kmsgIdle); n > 0 {
		fd, c.kmsgIdle = c.kmsgIdle[n-1], c.kmsgIdle[:n-1]
	}
	c.kmsgMu.Unlock()
	if fd < 0 {
		var err error
		if fd, err = unix.Open(c.kmsgPath, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0); err != nil {
			return nil
		}
	}
	if _, err := unix.Seek(fd, 0, unix.SEEK_END); err != nil {
		unix.Close(fd)
		return nil
	}
	return &kmsgCursor{fd: fd, c: c}
}

// close gives the descriptor back to its Client (or closes it when the
// Client keeps enough, or is closed).
func (k *kmsgCursor) close() {
	if k == nil {
		return
	}
	k.c.kmsgMu.Lock()
	if !k.c.kmsgClosed && len(k.c.kmsgIdle) < kmsgIdleMax {
		k.c.kmsgIdle = append(k.c.kmsgIdle, k.fd)
		k.fd = -1
	}
	k.c.kmsgMu.Unlock()
	if k.fd >= 0 {
		unix.Close(k.fd)
	}
}

// closeKmsg closes the descriptors the Client kept; later cursors close
// theirs.
func (c *Client) closeKmsg() {
	c.kmsgMu.Lock()
	idle := c.kmsgIdle
	c.kmsgIdle, c.kmsgClosed = nil, true
	c.kmsgMu.Unlock()
	for _, fd := range idle {
		unix.Close(fd)
	}
}

// reason reads the records logged since the mark and returns the
// device-mapper lines among them, preferring those naming dev (major:minor).
func (k *kmsgCursor) reason(dev uint64) string {
	if k == nil {
		return ""
	}
	defer k.close()
	var msgs []string
	buf := make([]byte, kmsgRecordSize)
	for i := 0; i < kmsgMaxRecords; i++ {
		n, err := unix.Read(k.fd, buf)
		if err == unix.EPIPE || err == unix.EINTR {
			continue // overwritten record, or interrupted: go on
		}
		if err != nil || n <= 0 {
			break // EAGAIN: nothing more
		}
		if m, ok := parseKmsgRecord(string(buf[:n])); ok {
			msgs = append(msgs, m)
		}
	}
	return pickReason(msgs, dev)
}

// parseKmsgRecord returns the message text of one /dev/kmsg record
// ("prio,seq,usec,flags[,...];text\n[ continuation lines]").
func parseKmsgRecord(rec string) (string, bool) {
	semi := strings.IndexByte(rec, ';')
	if semi < 0 {
		return "", false
	}
	prefix := rec[:semi]
	if prefix == "" || strings.Count(prefix, ",") < 3 {
		return "", false
	}
	msg := rec[semi+1:]
	if nl := strings.IndexByte(msg, '\n'); nl >= 0 {
		msg = msg[:nl]
	}
	return unescapeKmsg(msg), true
}

// unescapeKmsg turns the \xNN escapes /dev/kmsg uses back into bytes, except
// control characters, which stay escaped so that a reason stays one line.
func unescapeKmsg(s string) string {
	if !strings.Contains(s, `\x`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && s[i+1] == 'x' && isHex(s[i+2]) && isHex(s[i+3]) {
			if c := unhex(s[i+2])<<4 | unhex(s[i+3]); c >= 0x20 && c != 0x7f {
				b.WriteByte(c)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

// pickReason keeps the "device-mapper:" messages; when some of them name
// dev ("253:4:") and dev is known, the ones naming other devices are dropped
// (they came from concurrent operations). The result is bounded.
func pickReason(msgs []string, dev uint64) string {
	var dm []string
	for _, m := range msgs {
		if i := strings.Index(m, "device-mapper:"); i >= 0 {
			dm = append(dm, strings.TrimSpace(m[i:]))
		}
	}
	if dev != 0 {
		tag := " " + devString(dev) + ":"
		var mine []string
		for _, m := range dm {
			if strings.Contains(m, tag) || !mentionsDev(m) {
				mine = append(mine, m)
			}
		}
		dm = mine
	}
	r := strings.Join(dm, "; ")
	if len(r) > kmsgMaxReason {
		r = r[:kmsgMaxReason] + "..."
	}
	return r
}

// mentionsDev reports whether a device-mapper message names some device as
// " <major>:<minor>:".
func mentionsDev(m string) bool {
	for _, f := range strings.Fields(m) {
		if !strings.HasSuffix(f, ":") {
			continue
		}
		f = strings.TrimSuffix(f, ":")
		maj, min, ok := strings.Cut(f, ":")
		if ok && isDigits(maj) && isDigits(min) {
			return true
		}
	}
	return false
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// withKernelReason attaches the kernel's explanation to err when err is an
// *Error and the log had one.
func withKernelReason(err error, k *kmsgCursor, dev uint64) error {
	e, ok := err.(*Error)
	if !ok {
		k.close()
		return err
	}
	e.Kernel = k.reason(dev)
	return e
}

package dm

import (
	"strings"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"
)

// Message sends a target message (e.g. "create_thin 1" to a thin-pool at
// sector 0) and returns the kernel's reply, empty when it gives none. A
// failed message carries the kernel log's reason in its error when found.
//
// A reply too big for the buffer makes the message be sent again with a
// bigger one, so messages that both change state and reply at length are
// not a good fit (none of the thin-pool messages is).
func (c *Client) Message(name string, sector uint64, message string) (string, error) {
	if err := ValidateName(name); err != nil {
		return "", err
	}
	if message == "" || strings.IndexByte(message, 0) >= 0 {
		return "", errors.Wrapf(ErrInvalidArgument, "dm: message %s: the message is empty or contains a NUL byte", name)
	}
	k := c.markKmsg()
	rep, err := c.run("message", unix.DM_TARGET_MSG, request{dev: byName(name), payload: encodeMessage(sector, message), out: true})
	if err != nil {
		return "", withKernelReason(err, k, c.devOf(name))
	}
	k.close()
	if rep.hdr.Flags&unix.DM_DATA_OUT_FLAG == 0 {
		return "", nil
	}
	data, err := rep.data()
	if err != nil {
		return "", errors.Wrapf(err, "dm: message %s", name)
	}
	return cString(data), nil
}

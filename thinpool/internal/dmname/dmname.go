// Package dmname is how thinctl names the device-mapper devices of a
// root: every name and uuid carries the root's key (the device and inode
// of its directory), so that two roots on one host never clash and the
// devices of a root can be listed; names read back from the kernel map to
// thin ids only when they are exactly ours.
package dmname

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/thinpool/internal/store"
)

// Device-mapper names and uuids of a root. Every name carries the root's
// key so that two roots on one host never clash, and every uuid starts
// with UUIDPrefix+key+"-" so that the devices of a root can be listed.
const (
	NamePrefix = "thinctl-"
	UUIDPrefix = "THINCTL-"
)

// RootKey derives the key of a root from the device and inode of its
// directory, like Docker's "253:0-655790".
func RootKey(root string) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat(root, &st); err != nil {
		return "", errors.Wrapf(err, "stat %s", root)
	}
	return fmt.Sprintf("%d:%d-%d", unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino), nil
}

// Pool is the dm name of the pool of the root with this key.
func Pool(key string) string { return NamePrefix + key + "-pool" }

// PoolUUID is the dm uuid of the pool of the root with this key.
func PoolUUID(key string) string { return UUIDPrefix + key + "-pool" }

// Thin is the dm name of thin device devID; at most 8+22+1+8 bytes.
func Thin(key string, devID uint32) string {
	return NamePrefix + key + "-" + strconv.FormatUint(uint64(devID), 10)
}

// ThinUUID is the dm uuid of thin device devID.
func ThinUUID(key string, devID uint32) string {
	return UUIDPrefix + key + "-" + strconv.FormatUint(uint64(devID), 10)
}

// ParseThinUUID returns the device id encoded in a uuid of this root's
// thin devices, or false for anything else (including the pool).
func ParseThinUUID(key, uuid string) (uint32, bool) {
	return parseDevIDSuffix(UUIDPrefix+key+"-", uuid)
}

// ParseThin is ParseThinUUID for names (kernels that list no uuids).
func ParseThin(key, name string) (uint32, bool) {
	return parseDevIDSuffix(NamePrefix+key+"-", name)
}

func parseDevIDSuffix(prefix, s string) (uint32, bool) {
	rest, ok := strings.CutPrefix(s, prefix)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(rest, 10, 32)
	// Only the canonical spelling thinctl writes is ours: "0005" or "+5"
	// may be someone else's device.
	if err != nil || n == 0 || n > store.MaxDeviceID || strconv.FormatUint(n, 10) != rest {
		return 0, false
	}
	return uint32(n), true
}

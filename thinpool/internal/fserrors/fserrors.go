// Package fserrors tracks the thin devices whose filesystem recorded
// errors: the list a pool's repair leaves in a file (one id a line) until
// a filesystem check finds the device clean, and the error count the
// kernel keeps for a mounted ext4 filesystem.
package fserrors

import (
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/thinpool/internal/store"
)

// List is the file (its path) that lists the devices with filesystem
// errors.
type List string

// IDs reads the ids on the list (none when the file is missing); lines
// that are no valid id are left out.
func (l List) IDs() []string {
	b, err := os.ReadFile(string(l))
	if err != nil {
		return nil
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && store.ValidateID(l) == nil {
			out = append(out, l)
		}
	}
	return out
}

// Set adds id to (or with has false removes it from) the list; the file
// goes when the list is empty.
func (l List) Set(id string, has bool) error {
	set := map[string]bool{}
	for _, x := range l.IDs() {
		set[x] = true
	}
	if set[id] == has {
		return nil
	}
	if has {
		set[id] = true
	} else {
		delete(set, id)
	}
	ids := make([]string, 0, len(set))
	for x := range set {
		ids = append(ids, x)
	}
	sort.Strings(ids)
	path := string(l)
	if len(ids) == 0 {
		return os.Remove(path)
	}
	return os.WriteFile(path, []byte(strings.Join(ids, "\n")+"\n"), 0o600)
}

// LiveCount returns the error count the kernel keeps for the mounted ext4
// filesystem on device-mapper device dev (/sys/fs/ext4/dm-N/errors_count; 0 when
// there is none or it cannot be read).
func LiveCount(dev uint64) uint64 {
	b, err := os.ReadFile(filepath.Join("/sys/fs/ext4", "dm-"+strconv.FormatUint(uint64(unix.Minor(dev)), 10), "errors_count"))
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return n
}

// Package thintools runs the thin-provisioning-tools programs (thin_check,
// thin_repair, thin_dump) for thinpool: it finds them where distributions
// install them, runs them, and reads thin_dump's XML output, which it
// treats as hostile input.
package thintools

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/errdefs"
	"github.com/thinctl/thinctl/thinpool/internal/store"
)

// ErrDamaged is the class of metadata thin_check finds damaged and
// thin_repair cannot rebuild (thinpool.ErrMetadataDamaged).
var ErrDamaged = errdefs.New("the thin pool's metadata is damaged", errdefs.ErrCorrupt)

// ErrMissing is the class of a program thinctl runs that is not
// installed (thinpool.ErrToolMissing).
var ErrMissing = errdefs.New("a required program is not installed", errdefs.ErrNotSupported)

// Find finds a thin-provisioning-tools program on PATH or in
// /usr/sbin and /sbin (where Debian and Fedora install them).
func Find(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", errors.Wrapf(ErrMissing, "%s is not installed (install thin-provisioning-tools)", name)
}

// Run runs a program and returns its combined output.
func Run(ctx context.Context, tool string, args ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, tool, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return strings.TrimSpace(out.String()), err
}

// ParseDumpDeviceIDs reads the dev_id of every <device> element of
// thin_dump's XML output, sorted and without duplicates.
func ParseDumpDeviceIDs(r io.Reader) ([]uint32, error) {
	dec := xml.NewDecoder(r)
	seen := map[uint32]bool{}
	ids := []uint32{}
	sawSuperblock := false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, errors.Wrap(err, "thin_dump output")
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		switch se.Name.Local {
		case "superblock":
			sawSuperblock = true
		case "device":
			found := false
			for _, a := range se.Attr {
				if a.Name.Local != "dev_id" {
					continue
				}
				var n uint64
				if _, err := fmt.Sscanf(a.Value, "%d", &n); err != nil || n > store.MaxDeviceID || fmt.Sprint(n) != a.Value {
					return nil, errors.Errorf("thin_dump output: dev_id %q is not a 24-bit number", a.Value)
				}
				found = true
				if !seen[uint32(n)] {
					seen[uint32(n)] = true
					ids = append(ids, uint32(n))
				}
			}
			if !found {
				return nil, errors.New("thin_dump output: <device> without dev_id")
			}
		}
	}
	if !sawSuperblock {
		return nil, errors.New("thin_dump output has no <superblock>")
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids, nil
}

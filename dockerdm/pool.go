package dockerdm

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/dm"
	"github.com/thinctl/thinctl/fs"
)

// PoolView is the pool's own account of itself: its superblock (or live
// status) and the thin devices in its metadata.
type PoolView struct {
	Name string `json:"name"`
	// Active says the pool was already up in the kernel.
	Active bool `json:"active"`
	// Source says where the device list came from.
	Source        string       `json:"source"`
	TransactionID uint64       `json:"transaction_id"`
	DataBlockSize uint32       `json:"data_block_size_sectors"`
	DataBlocks    uint64       `json:"data_blocks"`
	DataUsed      uint64       `json:"data_blocks_used"`
	MetaBlocks    uint64       `json:"metadata_blocks"`
	MetaUsed      uint64       `json:"metadata_blocks_used"`
	NeedsCheck    bool         `json:"needs_check"`
	Devices       []ThinDevice `json:"devices"`
	// Compared is false when the device list could not be read; Notes say why.
	Compared bool     `json:"compared"`
	Notes    []string `json:"notes,omitempty"`
}

// ReadPool reads the pool of s without changing Docker's files or the
// pool's mappings. A pool that is down is read from its metadata file
// (superblock, then thin_dump of the file: nothing else has it open). A
// pool that is up is read from its status and, for the device list, from
// a metadata snapshot (reserve_metadata_snap, thin_dump -m,
// release_metadata_snap): the one change it makes, which the kernel keeps
// apart from the pool's live metadata. c may be nil (dm.Default).
func ReadPool(ctx context.Context, s *Store, c *dm.Client) (*PoolView, error) {
	v := &PoolView{Name: s.PoolName}
	if c == nil {
		if _, err := os.Stat("/dev/mapper/control"); err == nil {
			if c, err = dm.Default(); err != nil {
				return nil, errors.Wrap(err, "device-mapper")
			}
		}
	}
	if c != nil {
		if _, err := c.Info(s.PoolName); err == nil {
			v.Active = true
		} else if !errors.Is(err, dm.ErrNotFound) {
			return nil, errors.Wrapf(err, "look up pool %s", s.PoolName)
		}
	}
	if v.Active {
		return v, readLivePool(ctx, c, v)
	}
	if s.MetadataFile == "" {
		return nil, errors.Errorf("pool %s is not active and the store names no metadata file: bring up the pool's volume group first", s.PoolName)
	}
	f, err := openStoreFile(s.MetadataFile)
	if err != nil {
		return nil, errors.Wrap(err, "pool metadata")
	}
	buf := make([]byte, 4096)
	_, err = f.ReadAt(buf, 0)
	f.Close()
	if err != nil {
		return nil, errors.Wrapf(err, "read the superblock of %s", s.MetadataFile)
	}
	sb, err := ParseSuperblock(buf)
	if err != nil {
		return nil, errors.Wrapf(err, "pool metadata %s", s.MetadataFile)
	}
	v.TransactionID, v.DataBlockSize, v.NeedsCheck = sb.TransactionID, sb.DataBlockSize, sb.NeedsCheck
	v.DataBlocks, v.DataUsed, v.MetaBlocks, v.MetaUsed = sb.DataBlocks, sb.DataUsed, sb.MetadataBlocks, sb.MetadataUsed
	v.Source = "thin_dump of the metadata file (pool not active)"
	return v, dumpInto(ctx, v, s.MetadataFile)
}

// dumpInto runs thin_dump (args before the device) and fills v.Devices.
func dumpInto(ctx context.Context, v *PoolView, args ...string) error {
	tool, err := exec.LookPath("thin_dump")
	if err != nil {
		v.Notes = append(v.Notes, "thin_dump is not installed: the pool's devices were not compared (install thin-provisioning-tools)")
		return nil
	}
	var out, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, tool, append([]string{"--skip-mappings"}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return errors.Wrap(cerr, "thin_dump")
		}
		v.Notes = append(v.Notes, fmt.Sprintf("the pool's devices were not compared: thin_dump %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String())))
		return nil
	}
	d, err := ParseThinDump(&out)
	if err != nil {
		v.Notes = append(v.Notes, "the pool's devices were not compared: "+err.Error())
		return nil
	}
	if d.TransactionID != v.TransactionID && !v.Active {
		v.Notes = append(v.Notes, fmt.Sprintf("thin_dump says transaction %d, the superblock %d", d.TransactionID, v.TransactionID))
	}
	v.Devices, v.Compared = d.Devices, true
	return nil
}

func readLivePool(ctx context.Context, c *dm.Client, v *PoolView) error {
	ts, err := c.Table(v.Name, dm.TableOptions{})
	if err != nil {
		return errors.Wrapf(err, "table of pool %s", v.Name)
	}
	if len(ts) != 1 || ts[0].Type != "thin-pool" {
		return errors.Errorf("%s is not a thin pool", v.Name)
	}
	params := strings.Fields(ts[0].Params)
	if len(params) < 3 {
		return errors.Errorf("pool %s has a short table %q", v.Name, ts[0].Params)
	}
	bs, err := strconv.ParseUint(params[2], 10, 32)
	if err != nil {
		return errors.Errorf("pool %s: block size %q", v.Name, params[2])
	}
	v.DataBlockSize = uint32(bs)
	held, err := liveStatus(c, v)
	if err != nil {
		return err
	}
	if held != "-" {
		v.Notes = append(v.Notes, "the pool's devices were not compared: another program holds its held metadata root (root "+held+"); it was left alone")
		return nil
	}
	meta, err := fs.DevicePath(params[0])
	if err != nil {
		return err
	}
	if _, err := c.Message(v.Name, 0, dm.ThinReserveMetadataSnap); err != nil {
		v.Notes = append(v.Notes, "the pool's devices were not compared: "+dm.ThinReserveMetadataSnap+": "+err.Error())
		return nil
	}
	v.Source = "thin_dump of a held metadata root (pool active)"
	derr := dumpInto(ctx, v, "-m", meta)
	if _, err := c.Message(v.Name, 0, dm.ThinReleaseMetadataSnap); err != nil {
		return errors.Wrapf(err, "release the metadata snapshot of pool %s (release it with: dmsetup message %s 0 release_metadata_snap)", v.Name, v.Name)
	}
	return derr
}

// liveStatus fills v from the pool's status line and returns its held
// metadata root ("-" for none).
func liveStatus(c *dm.Client, v *PoolView) (string, error) {
	ts, err := c.Status(v.Name, dm.StatusOptions{})
	if err != nil {
		return "", errors.Wrapf(err, "status of pool %s", v.Name)
	}
	if len(ts) != 1 {
		return "", errors.Errorf("pool %s has %d targets", v.Name, len(ts))
	}
	f := strings.Fields(ts[0].Params)
	if len(f) < 4 {
		return "", errors.Errorf("pool %s status %q (failed pool?)", v.Name, ts[0].Params)
	}
	var perr error
	num := func(s string) uint64 {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil && perr == nil {
			perr = errors.Errorf("pool %s status %q: %q is not a number", v.Name, ts[0].Params, s)
		}
		return n
	}
	frac := func(s string) (uint64, uint64) {
		a, b, _ := strings.Cut(s, "/")
		return num(a), num(b)
	}
	v.TransactionID = num(f[0])
	v.MetaUsed, v.MetaBlocks = frac(f[1])
	v.DataUsed, v.DataBlocks = frac(f[2])
	for _, w := range f[4:] {
		if w == "needs_check" {
			v.NeedsCheck = true
		}
	}
	return f[3], perr
}

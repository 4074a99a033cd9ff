package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/loopback"
	"github.com/thinctl/thinctl/thinpool"
)

// ioCount is what the block layer counted on one disk so far.
type ioCount struct {
	Flushes int64 // flush requests completed (stat field 16)
}

// parseBlockStat reads the flush count out of a /sys/block/<dev>/stat line
// (17 fields since Linux 5.5; older kernels have no flush fields: 0).
func parseBlockStat(text string) (ioCount, error) {
	f := strings.Fields(text)
	if len(f) < 11 {
		return ioCount{}, errors.Errorf("block stat %q: %d fields, want at least 11", text, len(f))
	}
	if len(f) < 17 {
		return ioCount{}, nil
	}
	n, err := strconv.ParseInt(f[15], 10, 64)
	return ioCount{Flushes: n}, errors.Wrapf(err, "block stat flush field %q", f[15])
}

func readBlockStat(path string) ioCount {
	b, err := os.ReadFile(path)
	if err != nil {
		return ioCount{}
	}
	c, _ := parseBlockStat(string(b))
	return c
}

// diskStatPath is the stat file of the whole disk holding path (flushes are
// counted on the disk, not on its partitions).
func diskStatPath(path string) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return "", errors.Wrapf(err, "stat %s", path)
	}
	dir := "/sys/dev/block/" + strconv.Itoa(int(unix.Major(st.Dev))) + ":" + strconv.Itoa(int(unix.Minor(st.Dev)))
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", errors.Wrapf(err, "%s is not on a block device", path)
	}
	if _, err := os.Stat(filepath.Join(real, "partition")); err == nil {
		real = filepath.Dir(real)
	}
	return filepath.Join(real, "stat"), nil
}

// metaStatPath is the stat file of the loop device behind a pool's
// metadata file: each metadata commit of the pool flushes it.
func metaStatPath(p *thinpool.Pool) (string, error) {
	s, err := p.Status()
	if err != nil {
		return "", err
	}
	info, err := loopback.FindByBackingFile(s.MetadataFile)
	if err != nil {
		return "", err
	}
	return "/sys/block/" + filepath.Base(info.Path) + "/stat", nil
}

// flushCounter samples the flushes of the pools' metadata devices (summed:
// only the pool in use moves) and of the scratch disk.
type flushCounter struct {
	meta []string
	disk string
}

func (f flushCounter) sample() (meta, disk int64) {
	for _, m := range f.meta {
		meta += readBlockStat(m).Flushes
	}
	return meta, readBlockStat(f.disk).Flushes
}

func (r *rig) newFlushCounter() flushCounter {
	var fc flushCounter
	for _, p := range []*thinpool.Pool{r.pool, r.discard} {
		if p == nil {
			continue
		}
		if m, err := metaStatPath(p); err == nil {
			fc.meta = append(fc.meta, m)
		} else {
			r.logf("no flush counts for a pool's metadata device: %v", err)
		}
	}
	if d, err := diskStatPath(r.work); err == nil {
		fc.disk = d
	}
	return fc
}

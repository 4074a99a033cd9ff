package poolmeta

import (
	"os"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/fs"
	"github.com/thinctl/thinctl/internal/thinmeta"
)

// Exclusive reads, from the metadata root the pool holds, the data
// blocks only thin device devID maps, and the pool's data block size in
// sectors; dataBlocks is the size of the pool's data device in blocks,
// budget the most btree nodes read.
func Exclusive(metaDev string, devID uint32, dataBlocks uint64, budget int) ([]uint64, uint32, error) {
	var blocks []uint64
	var blockSectors uint32
	err := ReadHeld(metaDev, budget, func(m *thinmeta.Reader, sb thinmeta.Superblock) error {
		var err error
		blocks, err = m.Exclusive(sb, devID, dataBlocks)
		blockSectors = sb.DataBlockSize
		return err
	})
	return blocks, blockSectors, err
}

// ReadHeld reads the superblock of the metadata root the pool
// holds from its metadata device (metaDev, "major:minor") and runs fn with
// a reader of at most budget btree nodes.
func ReadHeld(metaDev string, budget int, fn func(*thinmeta.Reader, thinmeta.Superblock) error) error {
	return Read(metaDev, budget, func(m *thinmeta.Reader, path string) error {
		live, err := m.Superblock(0)
		if err != nil {
			return errors.Wrapf(err, "%s", path)
		}
		if live.HeldRoot == 0 {
			return errors.Errorf("%s: the superblock holds no held metadata root", path)
		}
		sb, err := m.Superblock(live.HeldRoot)
		if err != nil {
			return errors.Wrapf(err, "%s: held metadata root", path)
		}
		return errors.Wrapf(fn(m, sb), "%s: held metadata root", path)
	})
}

// Read opens the pool's metadata device (metaDev,
// "major:minor") and runs fn with a reader of at most budget btree nodes
// and the device's path. The device is read with O_DIRECT: the pool
// writes it with bios from dm-bufio, past the block device's page cache,
// which may hold older copies of the blocks.
func Read(metaDev string, budget int, fn func(m *thinmeta.Reader, path string) error) error {
	path, err := fs.DevicePath(metaDev)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if err != nil {
		return errors.Wrap(err, "open the pool's metadata device")
	}
	defer f.Close()
	buf, err := unix.Mmap(-1, 0, thinmeta.BlockSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return errors.Wrap(err, "a page-aligned buffer for O_DIRECT reads")
	}
	defer unix.Munmap(buf)
	m, err := thinmeta.NewReader(f, buf, budget)
	if err != nil {
		return err
	}
	return fn(m, path)
}

// liveRootNodeBudget bounds the nodes read from the live metadata: the top
// level of the mapping tree only (about 250 thin devices a node).
const liveRootNodeBudget = 256

// SharesRootLive reports whether, in the pool's last committed metadata,
// thin device devID's tree is the very tree of another device (a snapshot
// neither wrote to since): then deleting it frees no data block. It reads
// the live metadata without a held root, which is sound for this one
// answer only. The kernel never overwrites a block of the last committed
// metadata before the next commit, so when the superblock reads the same
// before and after the walk, every block read belongs to one committed
// state. And "shared" can only be wrong in the harmless direction: the
// caller then punches nothing and deletes the device, so a wrong "shared"
// could at worst leave blocks allocated in the data file, never punch a
// block someone uses. false (or an error) sends the caller to the held
// metadata root.
func SharesRootLive(metaDev string, devID uint32) (bool, error) {
	shared := false
	err := Read(metaDev, liveRootNodeBudget, func(m *thinmeta.Reader, path string) error {
		sb, err := m.Superblock(0)
		if err != nil {
			return errors.Wrapf(err, "%s", path)
		}
		devs, err := m.Devices(sb)
		if err != nil {
			return errors.Wrapf(err, "%s", path)
		}
		again, err := m.Superblock(0)
		if err != nil {
			return errors.Wrapf(err, "%s", path)
		}
		if again != sb {
			return errors.Errorf("%s: the pool committed during the read", path)
		}
		root, ok := devs[devID]
		if !ok {
			return errors.Wrapf(thinmeta.ErrNoDevice, "%s: thin id %d", path, devID)
		}
		for id, r := range devs {
			if id != devID && r == root {
				shared = true
			}
		}
		return nil
	})
	return shared, err
}

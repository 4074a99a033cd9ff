package thinmeta

import (
	"io"
	"sort"

	"github.com/pkg/errors"
)

// ErrBudget is returned when a walk would read more btree nodes than its
// budget allows.
var ErrBudget = errors.New("thin-pool metadata walk over its node budget")

// ErrNoDevice is returned when the mapping tree has no device of the id
// asked for.
var ErrNoDevice = errors.New("thin device not in the pool's metadata")

// maxDepth bounds the height of a tree: a btree of 4 KiB nodes holds
// every 64-bit key in far fewer levels, so a deeper walk means a loop.
const maxDepth = 16

// Reader reads the metadata of one pool, block by block, from r (the
// metadata device or a copy of it) and counts the btree nodes it reads
// against a budget.
type Reader struct {
	r      io.ReaderAt
	buf    []byte
	blocks uint64 // metadata blocks; 0 until a superblock is read
	budget int
	reads  int
}

// NewReader reads metadata blocks from r into buf (BlockSize bytes; a
// caller reading with O_DIRECT passes an aligned buffer) and reads at
// most budget btree nodes (0: no limit).
func NewReader(r io.ReaderAt, buf []byte, budget int) (*Reader, error) {
	if len(buf) != BlockSize {
		return nil, errors.Errorf("thinmeta: a read buffer of %d bytes, want %d", len(buf), BlockSize)
	}
	return &Reader{r: r, buf: buf, budget: budget}, nil
}

// NodeReads is the number of btree nodes read so far.
func (m *Reader) NodeReads() int { return m.reads }

func (m *Reader) read(blocknr uint64, what string) ([]byte, error) {
	if m.blocks != 0 && blocknr >= m.blocks {
		return nil, errors.Wrapf(ErrCorrupt, "%s at block %d is outside the metadata (%d blocks)", what, blocknr, m.blocks)
	}
	n, err := m.r.ReadAt(m.buf, int64(blocknr)*BlockSize)
	if n == len(m.buf) {
		return m.buf, nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return nil, errors.Wrapf(err, "read %s at metadata block %d", what, blocknr)
}

// Superblock reads and checks the superblock at blocknr (0 for the live
// one, the held root for the copy reserve_metadata_snap keeps). The first one read
// bounds every later block number.
func (m *Reader) Superblock(blocknr uint64) (Superblock, error) {
	b, err := m.read(blocknr, "superblock")
	if err != nil {
		return Superblock{}, err
	}
	s, err := ParseSuperblock(b, blocknr)
	if err != nil {
		return Superblock{}, err
	}
	if m.blocks == 0 {
		m.blocks = s.MetadataBlocks
	} else if s.MetadataBlocks != m.blocks {
		return Superblock{}, errors.Wrapf(ErrCorrupt, "superblock at block %d counts %d metadata blocks, the first one read %d", blocknr, s.MetadataBlocks, m.blocks)
	}
	return s, nil
}

// node reads and checks btree node blocknr.
func (m *Reader) node(blocknr uint64) (Node, error) {
	if m.blocks == 0 {
		return Node{}, errors.New("thinmeta: read a superblock before a btree node")
	}
	if m.budget > 0 && m.reads >= m.budget {
		return Node{}, errors.Wrapf(ErrBudget, "%d nodes read", m.reads)
	}
	if blocknr == 0 {
		return Node{}, errors.Wrap(ErrCorrupt, "a btree refers to block 0, the superblock")
	}
	b, err := m.read(blocknr, "btree node")
	if err != nil {
		return Node{}, err
	}
	m.reads++
	return ParseNode(b, blocknr)
}

// keyRange is the keys a subtree may hold: [lo, hi], hi inclusive.
type keyRange struct{ lo, hi uint64 }

// checkKeys makes sure n's keys lie in r: a parent's key i is at most the
// lowest key of child i (an insert below it lowers it, a remove leaves it)
// and above every key of child i-1.
func checkKeys(n Node, r keyRange) error {
	if len(n.Keys) == 0 {
		return nil
	}
	if n.Keys[0] < r.lo || n.Keys[len(n.Keys)-1] > r.hi {
		return errors.Wrapf(ErrCorrupt, "btree node at block %d holds keys %d..%d outside its parent's range %d..%d", n.Blocknr, n.Keys[0], n.Keys[len(n.Keys)-1], r.lo, r.hi)
	}
	return nil
}

// childRanges is the key range of each child of internal node n within r.
func childRanges(n Node, r keyRange) []keyRange {
	out := make([]keyRange, len(n.Keys))
	for i := range n.Keys {
		hi := r.hi
		if i+1 < len(n.Keys) {
			hi = n.Keys[i+1] - 1
		}
		out[i] = keyRange{n.Keys[i], hi}
	}
	return out
}

var fullRange = keyRange{0, ^uint64(0)}

// Devices reads the top level of sb's mapping tree: each thin id and the
// root of its tree.
func (m *Reader) Devices(sb Superblock) (map[uint32]uint64, error) {
	devs := map[uint32]uint64{}
	seen := map[uint64]bool{}
	var walk func(blocknr uint64, r keyRange, depth int) error
	walk = func(blocknr uint64, r keyRange, depth int) error {
		if depth > maxDepth || seen[blocknr] {
			return errors.Wrapf(ErrCorrupt, "the top level of the mapping tree loops at block %d", blocknr)
		}
		seen[blocknr] = true
		n, err := m.node(blocknr)
		if err != nil {
			return errors.Wrap(err, "top level of the mapping tree")
		}
		if err := checkKeys(n, r); err != nil {
			return err
		}
		if n.Leaf {
			for i, k := range n.Keys {
				if k >= 1<<24 {
					return errors.Wrapf(ErrCorrupt, "btree node at block %d: thin id %d is not 24 bits", n.Blocknr, k)
				}
				if v := n.Values[i]; v == 0 || v >= m.blocks {
					return errors.Wrapf(ErrCorrupt, "btree node at block %d: thin device %d's tree at block %d is outside the metadata", n.Blocknr, k, v)
				}
				devs[uint32(k)] = n.Values[i]
			}
			return nil
		}
		for i, cr := range childRanges(n, r) {
			if err := walk(n.Values[i], cr, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(sb.DataMappingRoot, fullRange, 0); err != nil {
		return nil, err
	}
	return devs, nil
}

// walkTree visits every node of the tree at root, depth first, keys in
// order. enter is called for each node before it is read; false skips it
// (and everything under it). leaf gets each leaf. A node met twice in one
// walk is a loop (one device's tree never shares a node with itself).
func (m *Reader) walkTree(root uint64, enter func(blocknr uint64) bool, visit func(n Node) error) error {
	seen := map[uint64]bool{}
	var walk func(blocknr uint64, r keyRange, depth int) error
	walk = func(blocknr uint64, r keyRange, depth int) error {
		if depth > maxDepth || seen[blocknr] {
			return errors.Wrapf(ErrCorrupt, "a device's tree loops at block %d", blocknr)
		}
		seen[blocknr] = true
		if !enter(blocknr) {
			return nil
		}
		n, err := m.node(blocknr)
		if err != nil {
			return err
		}
		if err := checkKeys(n, r); err != nil {
			return err
		}
		if err := visit(n); err != nil {
			return err
		}
		if n.Leaf {
			return nil
		}
		for i, cr := range childRanges(n, r) {
			if err := walk(n.Values[i], cr, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(root, fullRange, 0)
}

// checkLeafValues checks that every mapping of leaf n names a data block
// below dataBlocks.
func checkLeafValues(n Node, dataBlocks uint64) error {
	for i, v := range n.Values {
		if d, _ := unpackMapping(v); d >= dataBlocks {
			return errors.Wrapf(ErrCorrupt, "btree node at block %d: virtual block %d maps data block %d, beyond the pool's %d", n.Blocknr, n.Keys[i], d, dataBlocks)
		}
	}
	return nil
}

// checkChildren checks that internal node n's children are metadata blocks.
func (m *Reader) checkChildren(n Node) error {
	for _, c := range n.Values {
		if c == 0 || c >= m.blocks {
			return errors.Wrapf(ErrCorrupt, "btree node at block %d: child block %d is outside the metadata", n.Blocknr, c)
		}
	}
	return nil
}

// Mappings lists every mapping of the device whose tree is at root, in
// virtual block order; dataBlocks is the size of the pool's data device in
// data blocks (a mapping beyond it is corrupt).
func (m *Reader) Mappings(root, dataBlocks uint64) ([]Mapping, error) {
	var out []Mapping
	err := m.walkTree(root, func(uint64) bool { return true }, func(n Node) error {
		if !n.Leaf {
			return m.checkChildren(n)
		}
		if err := checkLeafValues(n, dataBlocks); err != nil {
			return err
		}
		for i, k := range n.Keys {
			d, t := unpackMapping(n.Values[i])
			out = append(out, Mapping{Virtual: k, Data: d, Time: t})
		}
		return nil
	})
	return out, err
}

// Exclusive lists the data blocks, sorted, that thin device dev maps and
// no other device of sb's mapping tree does: the blocks deleting dev
// frees. Snapshots share btree nodes (a snapshot starts with its origin's
// tree root), so a node of dev's tree that another device's tree reaches
// is shared with everything under it; the other trees are walked only
// down to such nodes. dataBlocks bounds the data block numbers.
func (m *Reader) Exclusive(sb Superblock, dev uint32, dataBlocks uint64) ([]uint64, error) {
	devs, err := m.Devices(sb)
	if err != nil {
		return nil, err
	}
	root, ok := devs[dev]
	if !ok {
		return nil, errors.Wrapf(ErrNoDevice, "thin id %d", dev)
	}
	for id, r := range devs {
		if id != dev && r == root {
			return nil, nil // a snapshot of dev, or dev one of another's that neither wrote to
		}
	}
	// dev's tree: every node, and the data blocks of each leaf.
	type dnode struct {
		children []uint64 // internal
		data     []uint64 // leaf
	}
	mine := map[uint64]*dnode{}
	mineData := map[uint64]bool{}
	err = m.walkTree(root, func(uint64) bool { return true }, func(n Node) error {
		d := &dnode{}
		if n.Leaf {
			if err := checkLeafValues(n, dataBlocks); err != nil {
				return err
			}
			for _, v := range n.Values {
				b, _ := unpackMapping(v)
				d.data = append(d.data, b)
				mineData[b] = true
			}
		} else {
			if err := m.checkChildren(n); err != nil {
				return err
			}
			d.children = n.Values
		}
		mine[n.Blocknr] = d
		return nil
	})
	if err != nil {
		return nil, errors.Wrapf(err, "thin device %d's tree", dev)
	}
	// The other trees, down to the nodes they share with dev's.
	sharedNode := map[uint64]bool{}
	sharedData := map[uint64]bool{}
	visited := map[uint64]bool{} // nodes of other trees already walked (snapshots share them among themselves)
	ids := make([]uint32, 0, len(devs))
	for id := range devs {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		if id == dev {
			continue
		}
		err := m.walkTree(devs[id], func(b uint64) bool {
			if mine[b] != nil {
				sharedNode[b] = true
				return false
			}
			if visited[b] {
				return false
			}
			visited[b] = true
			return true
		}, func(n Node) error {
			if !n.Leaf {
				return m.checkChildren(n)
			}
			if err := checkLeafValues(n, dataBlocks); err != nil {
				return err
			}
			for _, v := range n.Values {
				if b, _ := unpackMapping(v); mineData[b] {
					sharedData[b] = true
				}
			}
			return nil
		})
		if err != nil {
			return nil, errors.Wrapf(err, "thin device %d's tree", id)
		}
	}
	// dev's blocks outside the shared nodes and not mapped elsewhere.
	var out []uint64
	var collect func(b uint64)
	collect = func(b uint64) {
		if sharedNode[b] {
			return
		}
		d := mine[b]
		for _, c := range d.children {
			collect(c)
		}
		for _, x := range d.data {
			if !sharedData[x] {
				out = append(out, x)
			}
		}
	}
	collect(root)
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return dedupe(out), nil
}

// dedupe drops repeats from sorted xs.
func dedupe(xs []uint64) []uint64 {
	out := xs[:0]
	for i, x := range xs {
		if i == 0 || x != xs[i-1] {
			out = append(out, x)
		}
	}
	return out
}

// Run is a range of consecutive data blocks.
type Run struct{ Start, Len uint64 }

// Runs merges sorted block numbers into runs of consecutive blocks.
func Runs(blocks []uint64) []Run {
	var out []Run
	for _, b := range blocks {
		if n := len(out); n > 0 && out[n-1].Start+out[n-1].Len == b {
			out[n-1].Len++
			continue
		}
		out = append(out, Run{Start: b, Len: 1})
	}
	return out
}

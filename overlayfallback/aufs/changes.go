package aufs

import (
	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/driver"
	"github.com/thinctl/thinctl/overlayfallback"
)

// Changes lists the paths layer id adds, modifies or deletes relative to
// parent, sorted, each starting with "/". For id's own parent it reads
// diff/<id> against the ancestors' diff directories: an entry is added when
// the parent's view lacks the path and modified otherwise (directories
// holding changes count as modified, as aufs copies them up), ".wh.<name>"
// deletes <name>, and an opaque directory deletes every entry of the
// parent's view it does not hold again. Other parents go through
// driver.NaiveDiff.
func (d *Driver) Changes(id, parent string) ([]driver.Change, error) {
	ok, err := d.native("changes", id, parent)
	if err != nil {
		return nil, err
	}
	if !ok {
		return driver.NaiveDiff(d).Changes(id, parent)
	}
	chain, err := d.ancestors(id)
	if err != nil {
		return nil, err
	}
	lowers := make([]string, len(chain))
	for i, a := range chain {
		lowers[i] = d.diffPath(a)
	}
	all, err := overlayfallback.Changes(d.diffPath(id), lowers, overlayfallback.Aufs)
	if err != nil {
		return nil, errors.Wrapf(err, "aufs: changes of %s", id)
	}
	return dropMeta(all), nil
}

// dropMeta removes changes at or below aufs-reserved names: the shared
// walker skips those names but still descends into reserved directories
// (.wh..wh.plnk, .wh..wh.orph, renamed-away .wh..wh.<name>.<n>).
func dropMeta(all []driver.Change) []driver.Change {
	out := all[:0]
	for _, c := range all {
		if !underMeta(c.Path) {
			out = append(out, c)
		}
	}
	return out
}

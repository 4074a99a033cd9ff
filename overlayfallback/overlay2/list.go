package overlay2

import (
	"sort"

	"github.com/thinctl/thinctl/driver"
	"github.com/thinctl/thinctl/fs"
)

// List returns every layer in the home, sorted by id, with its parent
// (resolved from the nearest entry of its lower file) and whether its
// merged directory is mounted. A layer without a parent is never mounted:
// Get hands out its diff directory in place.
func (d *Driver) List() ([]driver.LayerInfo, error) {
	ids, err := d.layerIDs()
	if err != nil {
		return nil, err
	}
	byLink := make(map[string]string, len(ids))
	for _, id := range ids {
		if link, err := d.readLink(id); err == nil {
			byLink[link] = id
		}
	}
	out := make([]driver.LayerInfo, 0, len(ids))
	for _, id := range ids {
		lower, err := d.readLower(id)
		if err != nil {
			return nil, err
		}
		li := driver.LayerInfo{ID: id, Extra: map[string]string{"diff": d.diffDir(id)}}
		if len(lower) > 0 {
			li.Parent = byLink[lower[0]]
			if mounted, _ := fs.IsMounted(d.mergedDir(id)); mounted {
				li.Mounted, li.MountPath = true, d.mergedDir(id)
			}
			li.Active = li.Mounted
		}
		out = append(out, li)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

package overlayfallback

import (
	"context"
	"strings"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/driver"
)

// CheckRemovable is what both overlay backends check before they remove
// layer id: driver.ErrNotFound when it does not exist, driver.ErrHasChildren
// naming the layers built on it, and ctx's error once ctx is done. backend
// names the backend in the messages ("overlay2", "aufs"); children lists the
// layers built on a layer.
func CheckRemovable(ctx context.Context, backend, id string, exists bool, children func(id string) ([]string, error)) error {
	if !exists {
		return errors.Wrapf(driver.ErrNotFound, "%s: remove layer %s", backend, id)
	}
	kids, err := children(id)
	if err != nil {
		return errors.Wrapf(err, "%s: remove layer %s", backend, id)
	}
	if len(kids) > 0 {
		return errors.Wrapf(driver.ErrHasChildren, "%s: remove layer %s: layers %s build on it; remove them first", backend, id, strings.Join(kids, ", "))
	}
	if err := ctx.Err(); err != nil {
		return errors.Wrapf(err, "%s: remove layer %s", backend, id)
	}
	return nil
}

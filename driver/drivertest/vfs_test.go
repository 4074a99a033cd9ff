package drivertest_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/driver"
	"github.com/thinctl/thinctl/driver/drivertest"
)

// copyDriver is a test backend in the style of Docker's vfs: every layer is
// a full copy of its parent (made by streaming the parent through the
// layer tar code), and Get bind-mounts the copy. It exercises the suite and
// NaiveDiff without any union filesystem.
type copyDriver struct {
	home string
	mu   sync.Mutex
	refs map[string]int
}

func (d *copyDriver) String() string              { return "copy" }
func (d *copyDriver) dir(id string) string        { return filepath.Join(d.home, "layers", id) }
func (d *copyDriver) mnt(id string) string        { return filepath.Join(d.home, "mnt", id) }
func (d *copyDriver) parentFile(id string) string { return filepath.Join(d.home, "parents", id) }

func (d *copyDriver) Create(ctx context.Context, id, parent string, o *driver.CreateOpts) error {
	if o != nil && o.StorageOpt["size"] != "" {
		return errors.Wrap(driver.ErrNotSupported, "the copy backend has no size option")
	}
	if d.Exists(id) {
		return driver.ErrExists
	}
	if parent != "" && !d.Exists(parent) {
		return driver.ErrNotFound
	}
	if err := os.MkdirAll(d.dir(id), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(d.parentFile(id), []byte(parent), 0o644); err != nil {
		return err
	}
	if parent == "" {
		return nil
	}
	changes, err := driver.ChangesDirs(d.dir(parent), "")
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := driver.WriteChanges(&buf, d.dir(parent), changes); err != nil {
		return err
	}
	_, err = driver.ApplyTar(d.dir(id), &buf, nil)
	return err
}

func (d *copyDriver) CreateReadWrite(ctx context.Context, id, parent string, o *driver.CreateOpts) error {
	return d.Create(ctx, id, parent, o)
}

func (d *copyDriver) Remove(ctx context.Context, id string) error {
	if !d.Exists(id) {
		return driver.ErrNotFound
	}
	ents, _ := os.ReadDir(filepath.Join(d.home, "parents"))
	for _, e := range ents {
		if b, _ := os.ReadFile(d.parentFile(e.Name())); string(b) == id {
			return errors.Wrapf(driver.ErrHasChildren, "layer %s", id)
		}
	}
	os.Remove(d.parentFile(id))
	return os.RemoveAll(d.dir(id))
}

func (d *copyDriver) Get(ctx context.Context, id, _ string) (string, error) {
	if !d.Exists(id) {
		return "", driver.ErrNotFound
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.refs[id] == 0 {
		if err := os.MkdirAll(d.mnt(id), 0o755); err != nil {
			return "", err
		}
		if err := unix.Mount(d.dir(id), d.mnt(id), "", unix.MS_BIND, ""); err != nil {
			return "", err
		}
	}
	d.refs[id]++
	return d.mnt(id), nil
}

func (d *copyDriver) Put(ctx context.Context, id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.refs[id]--; d.refs[id] == 0 {
		return unix.Unmount(d.mnt(id), 0)
	}
	return nil
}

func (d *copyDriver) Exists(id string) bool {
	_, err := os.Stat(d.dir(id))
	return err == nil
}

func (d *copyDriver) Status() []driver.KV { return []driver.KV{{Key: "Layers", Value: "some"}} }

func (d *copyDriver) Metadata(id string) (map[string]string, error) {
	if !d.Exists(id) {
		return nil, driver.ErrNotFound
	}
	return map[string]string{"Dir": d.dir(id)}, nil
}

func (d *copyDriver) Cleanup(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, n := range d.refs {
		if n > 0 {
			unix.Unmount(d.mnt(id), unix.MNT_DETACH)
		}
	}
	d.refs = map[string]int{}
	return nil
}

func TestSuiteOnACopyingBackendWithNaiveDiff(t *testing.T) {
	drivertest.Run(t, func(t *testing.T) driver.Driver {
		home := t.TempDir()
		for _, sub := range []string{"layers", "mnt", "parents"} {
			if err := os.MkdirAll(filepath.Join(home, sub), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		d := &copyDriver{home: home, refs: map[string]int{}}
		t.Cleanup(func() {
			if err := d.Cleanup(t.Context()); err != nil && !strings.Contains(err.Error(), "not mounted") {
				t.Error(err)
			}
		})
		return d
	})
}

func TestACopyingBackendWithNaiveDiffSurvivesEveryHostileArchive(t *testing.T) {
	drivertest.RunHostile(t, func(t *testing.T) driver.Driver {
		home := t.TempDir()
		for _, sub := range []string{"layers", "mnt", "parents"} {
			if err := os.MkdirAll(filepath.Join(home, sub), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		d := &copyDriver{home: home, refs: map[string]int{}}
		t.Cleanup(func() { d.Cleanup(t.Context()) })
		return d
	})
}

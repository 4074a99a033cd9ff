package main

import (
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/driver"
	"github.com/thinctl/thinctl/thinpool"
)

// layerStore serves the commands from a file-level driver (overlay2,
// aufs) through driver.Driver and driver.Lister. It reuses thinpool's
// sentinel errors so that every driver's failures get the same hints.
type layerStore struct {
	d      driver.Driver
	ch     choice
	statfs func(path string) (total, free uint64, err error)
}

var _ store = (*layerStore)(nil)

func (s *layerStore) lister() (driver.Lister, error) {
	if l, ok := s.d.(driver.Lister); ok {
		return l, nil
	}
	return nil, errors.Errorf("the %s driver cannot list its layers", s.d.String())
}

func (s *layerStore) status() (poolStatus, error) {
	layers, err := s.devices()
	if err != nil {
		return poolStatus{}, err
	}
	ps := poolStatus{Driver: s.ch.name, DriverReason: s.ch.reason, State: "rw"}
	for _, l := range layers {
		if !l.Deleted {
			ps.Devices++
		}
	}
	if total, free, err := s.statfs(s.ch.home); err == nil && total >= free {
		ps.DataTotalBytes, ps.DataUsedBytes = total, total-free
	}
	ps.details = append([]driver.KV{{Key: "Home", Value: s.ch.home}}, s.d.Status()...)
	return ps, nil
}

func (s *layerStore) create(id, parent string, size uint64) error {
	if parent != "" && !s.d.Exists(parent) {
		return errors.Wrapf(thinpool.ErrParentNotFound, "%s", parent)
	}
	if s.d.Exists(id) {
		return errors.Wrapf(thinpool.ErrDeviceExists, "%s", id)
	}
	opts := &driver.CreateOpts{}
	if size > 0 {
		opts.StorageOpt = map[string]string{"size": strconv.FormatUint(size, 10)}
	}
	return s.d.CreateReadWrite(id, parent, opts)
}

func (s *layerStore) mount(id string, opts []string) (string, error) {
	if len(opts) > 0 {
		return "", &dmOnlyError{what: "--mount-opt", driver: s.ch.name}
	}
	if !s.d.Exists(id) {
		return "", errors.Wrapf(thinpool.ErrDeviceNotFound, "%s", id)
	}
	return s.d.Get(id, "")
}

// unmount releases the mount whoever made it: the drivers count Get
// references per process, and each thinctl command is its own process, so
// a Get (which adopts the existing mount) precedes the Put that unmounts.
// A layer that is not mounted has nothing to release.
func (s *layerStore) unmount(id string) error {
	d, err := s.device(id)
	if err != nil {
		return err
	}
	if !d.Mounted {
		return nil // like devicemapper: nothing to release
	}
	if _, err := s.d.Get(id, ""); err != nil {
		return err
	}
	return s.d.Put(id)
}

func (s *layerStore) remove(id string) (bool, error) {
	d, err := s.device(id)
	if err != nil {
		return false, err
	}
	if d.Mounted {
		if err := s.unmount(id); err != nil {
			return false, err
		}
	}
	return false, s.d.Remove(id)
}

func (s *layerStore) devices() ([]deviceInfo, error) {
	l, err := s.lister()
	if err != nil {
		return nil, err
	}
	layers, err := l.List()
	if err != nil {
		return nil, err
	}
	out := make([]deviceInfo, 0, len(layers))
	for _, li := range layers {
		d := deviceInfo{ID: li.ID, Parent: li.Parent, SizeBytes: uint64(li.SizeBytes),
			Mounted: li.Mounted, MountPath: li.MountPath, Deleted: li.Deleted, Active: li.Mounted}
		if v, err := strconv.ParseUint(li.Extra["device_id"], 10, 32); err == nil {
			d.DeviceID = uint32(v)
		}
		if v, err := strconv.ParseBool(li.Extra["active"]); err == nil {
			d.Active = v
		}
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (s *layerStore) device(id string) (deviceInfo, error) {
	ds, err := s.devices()
	if err != nil {
		return deviceInfo{}, err
	}
	for _, d := range ds {
		if d.ID == id {
			return d, nil
		}
	}
	return deviceInfo{}, errors.Wrapf(thinpool.ErrDeviceNotFound, "%s", id)
}

// check looks for what a file-level driver can get wrong: layers whose
// parent is gone and deletions left pending. With repair it retries the
// pending deletions.
func (s *layerStore) check(repair bool) (checkReport, error) {
	ds, err := s.devices()
	if err != nil {
		return checkReport{}, err
	}
	have := map[string]bool{}
	for _, d := range ds {
		have[d.ID] = true
	}
	r := checkReport{Problems: []problem{}}
	for _, d := range ds {
		if d.Parent != "" && !have[d.Parent] {
			r.Problems = append(r.Problems, problem{Kind: "missing_parent", ID: d.ID,
				Detail: "parent " + d.Parent + " does not exist"})
		}
		if d.Deleted {
			p := problem{Kind: "deleted_pending", ID: d.ID, Detail: "deletion not finished"}
			if repair {
				p.fixed = s.d.Remove(d.ID) == nil
			}
			r.Problems = append(r.Problems, p)
		}
	}
	r.Consistent = len(r.Problems) == 0
	return r, nil
}

func (s *layerStore) gc() ([]string, error) {
	ds, err := s.devices()
	if err != nil {
		return nil, err
	}
	var done []string
	for _, d := range ds {
		if !d.Deleted {
			continue
		}
		if err := s.d.Remove(d.ID); err != nil {
			return done, err
		}
		done = append(done, d.ID)
	}
	return done, nil
}

func (s *layerStore) down() error {
	ds, err := s.devices()
	if err != nil {
		return err
	}
	var mounted []string
	for _, d := range ds {
		if d.Mounted {
			mounted = append(mounted, d.ID)
		}
	}
	if len(mounted) > 0 {
		return errors.Wrapf(thinpool.ErrBusy, "mounted: %s", strings.Join(mounted, ", "))
	}
	return s.d.Cleanup()
}

// destroy removes every layer (children before parents) and the home.
func (s *layerStore) destroy(force bool) error {
	ds, err := s.devices()
	if err != nil {
		return err
	}
	if len(ds) > 0 && !force {
		ids := make([]string, len(ds))
		for i, d := range ds {
			ids[i] = d.ID
		}
		return errors.Wrapf(thinpool.ErrHasChildren, "%d devices exist (%s)", len(ds), strings.Join(ids, ", "))
	}
	for _, d := range ds {
		if d.Mounted {
			if err := s.unmount(d.ID); err != nil {
				return err
			}
		}
	}
	for _, id := range childrenFirst(ds) {
		if err := s.d.Remove(id); err != nil {
			return err
		}
	}
	if err := s.d.Cleanup(); err != nil {
		return err
	}
	return errors.Wrap(os.RemoveAll(s.ch.home), "remove driver home")
}

// childrenFirst orders ids so that every layer comes before its parent.
func childrenFirst(ds []deviceInfo) []string {
	parent := map[string]string{}
	for _, d := range ds {
		parent[d.ID] = d.Parent
	}
	depth := func(id string) int {
		n := 0
		for p := parent[id]; p != "" && n <= len(ds); p = parent[p] {
			n++
		}
		return n
	}
	ids := make([]string, 0, len(ds))
	for _, d := range ds {
		ids = append(ids, d.ID)
	}
	sort.SliceStable(ids, func(i, j int) bool { return depth(ids[i]) > depth(ids[j]) })
	return ids
}

func (s *layerStore) close() error { return nil }

func (s *layerStore) label() string { return s.ch.name + " driver home " + s.ch.home }

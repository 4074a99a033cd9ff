package main

import (
	"context"
	"sort"
	"strconv"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/driver"
	"github.com/thinctl/thinctl/thinpool"
)

// dmStore serves every command from an open thinpool.Pool.
type dmStore struct {
	p  *thinpool.Pool
	ch choice
}

var _ thinStore = (*dmStore)(nil)

func deviceFromPool(d thinpool.Device) deviceInfo {
	return deviceInfo{
		ID:         d.ID,
		Parent:     d.Parent,
		DeviceID:   d.DeviceID,
		SizeBytes:  d.Size,
		Active:     d.Active,
		Mounted:    d.Mounted,
		MountPath:  d.MountPath,
		Deleted:    d.Deleted,
		devicePath: d.DevicePath,
	}
}

func (s *dmStore) status() (poolStatus, error) {
	st, err := s.p.Status()
	if err != nil {
		return poolStatus{}, err
	}
	ps := poolStatus{
		Driver:             "devicemapper",
		DriverReason:       s.ch.reason,
		PoolName:           st.PoolName,
		TransactionID:      st.TransactionID,
		DataUsedBytes:      st.DataUsed,
		DataTotalBytes:     st.DataTotal,
		MetadataUsedBytes:  st.MetadataUsed,
		MetadataTotalBytes: st.MetadataTotal,
		State:              st.State,
		Devices:            st.Devices,
	}
	if st.NeedsCheck {
		ps.details = append(ps.details, driver.KV{Key: "Needs check", Value: "yes (run thinctl check)"})
	}
	if st.DataUsed <= st.DataTotal && st.DataAvailable < st.DataTotal-st.DataUsed {
		ps.details = append(ps.details, driver.KV{Key: "Data free",
			Value: humanSize(st.DataAvailable) + " (limited by the filesystem holding the data file)"})
	}
	if st.BaseSize != 0 {
		ps.details = append(ps.details, driver.KV{Key: "Base device", Value: humanSize(st.BaseSize)})
	}
	if st.MinFreeSpace != 0 {
		ps.details = append(ps.details, driver.KV{Key: "Min free space",
			Value: strconv.FormatFloat(st.MinFreeSpace, 'f', -1, 64) + "% (create refuses below it)"})
	}
	if st.ExternalPool {
		ps.details = append(ps.details, driver.KV{Key: "External pool", Value: "yes (never deactivated by thinctl)"})
	}
	if st.BlockSize != 0 {
		ps.details = append(ps.details, driver.KV{Key: "Block size", Value: humanSize(st.BlockSize)})
	}
	if st.Filesystem != "" {
		ps.details = append(ps.details, driver.KV{Key: "Filesystem", Value: string(st.Filesystem)})
	}
	if st.DataFile != "" {
		ps.details = append(ps.details, driver.KV{Key: "Data file", Value: st.DataFile})
	}
	if st.MetadataFile != "" {
		ps.details = append(ps.details, driver.KV{Key: "Metadata file", Value: st.MetadataFile})
	}
	return ps, nil
}

func (s *dmStore) create(id, parent string, size uint64) error {
	return s.p.Create(context.TODO(), id, parent, thinpool.CreateOptions{Size: size})
}

func (s *dmStore) mount(id string, opts []string) (string, error) {
	return s.p.Mount(context.TODO(), id, thinpool.MountOptions{Options: opts})
}

func (s *dmStore) unmount(id string) error { return s.p.Unmount(context.TODO(), id) }

func (s *dmStore) remove(id string) (bool, error) {
	err := s.p.Remove(context.TODO(), id)
	if errors.Is(err, thinpool.ErrDeferred) {
		return true, err
	}
	return false, err
}

func (s *dmStore) devices() ([]deviceInfo, error) {
	ds, err := s.p.Devices()
	if err != nil {
		return nil, err
	}
	out := make([]deviceInfo, 0, len(ds))
	for _, d := range ds {
		out = append(out, deviceFromPool(d))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (s *dmStore) device(id string) (deviceInfo, error) {
	d, err := s.p.Device(id)
	if err != nil {
		return deviceInfo{}, err
	}
	return deviceFromPool(d), nil
}

func (s *dmStore) check(repair bool) (checkReport, error) {
	r, err := s.p.Check(context.TODO(), thinpool.CheckOptions{Repair: repair})
	if err != nil {
		return checkReport{}, err
	}
	out := checkReport{Consistent: r.Consistent, Problems: []problem{}}
	for _, p := range r.Problems {
		out.Problems = append(out.Problems, problem{Kind: p.Kind, ID: p.ID, Detail: p.Detail, fixed: p.Fixed})
	}
	return out, nil
}

func (s *dmStore) gc() ([]string, error) { return s.p.GC(context.TODO()) }

func (s *dmStore) down() error { return s.p.Down(context.TODO()) }

func (s *dmStore) destroy(force bool) error { return s.p.Destroy(context.TODO(), force) }

func (s *dmStore) close() error { return s.p.Close() }

func (s *dmStore) label() string { return "pool " + s.p.Name() }

func (s *dmStore) grow(data, metadata uint64) (poolStatus, poolStatus, error) {
	before, err := s.status()
	if err != nil {
		return before, before, err
	}
	if err := s.p.Grow(context.TODO(), thinpool.GrowOptions{DataSize: data, MetadataSize: metadata}); err != nil {
		return before, before, err
	}
	after, err := s.status()
	return before, after, err
}

func (s *dmStore) activate(id string) (string, error) { return s.p.Activate(context.TODO(), id) }

func (s *dmStore) deactivate(id string) error { return s.p.Deactivate(context.TODO(), id) }

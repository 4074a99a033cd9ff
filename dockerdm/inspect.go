package dockerdm

import (
	"context"
	"fmt"
	"sort"

	"github.com/thinctl/thinctl/dm"
)

// Disagreement kinds.
const (
	// KindRecordWithoutThin: a live record names a thin id the pool lacks.
	KindRecordWithoutThin = "record-without-thin-device"
	// KindThinWithoutRecord: a thin device no record names.
	KindThinWithoutRecord = "thin-device-without-record"
	// KindOpenTransaction: Docker's transaction is newer than the pool's.
	KindOpenTransaction = "open-transaction"
	// KindDeletedRecord: a record Docker marked for deferred deletion.
	KindDeletedRecord = "deleted-record"
	// KindSharedThinID: two records name one thin id.
	KindSharedThinID = "shared-thin-id"
	// KindLayerWithoutRecord: a layer's cache-id has no device record.
	KindLayerWithoutRecord = "layer-without-record"
	// KindContainerWithoutRecord: a container's mount-id or init-id has no record.
	KindContainerWithoutRecord = "container-without-record"
	// KindImageWithoutLayer: an image names a layer the layer database lacks.
	KindImageWithoutLayer = "image-without-layer"
	// KindUnreferencedRecord: a live record no layer or container uses.
	KindUnreferencedRecord = "unreferenced-record"
)

// Disagreement is one way the store and the pool (or the store's own
// parts) do not agree.
type Disagreement struct {
	Kind     string `json:"kind"`
	Hash     string `json:"hash,omitempty"`
	DeviceID *int64 `json:"device_id,omitempty"`
	Detail   string `json:"detail"`
}

// String is the detail, which names the kind's objects.
func (d Disagreement) String() string { return d.Kind + ": " + d.Detail }

// LayerReport is one layer of an image with its device.
type LayerReport struct {
	Layer
	// DeviceID is the thin id of the layer's device (nil: no record).
	DeviceID *uint32 `json:"device_id"`
}

// ImageReport is one image with its layers, base first.
type ImageReport struct {
	Image
	LayerReports []LayerReport `json:"layer_devices"`
	// Size is the sum of the layers' recorded sizes (what docker images shows).
	Size int64 `json:"size"`
}

// ContainerReport is a container with its devices.
type ContainerReport struct {
	Container
	RWDevice   *uint32 `json:"rw_device_id"`
	InitDevice *uint32 `json:"init_device_id"`
}

// PoolReport is the pool beside Docker's transaction.
type PoolReport struct {
	PoolView
	// DockerTransaction is transaction-metadata's open_transaction_id.
	DockerTransaction uint64 `json:"docker_transaction_id"`
	// TransactionOpen: Docker's transaction is newer than the pool's.
	TransactionOpen bool `json:"transaction_open"`
	// BaseDeviceFilesystem and NextDeviceID are what deviceset-metadata
	// says (NextDeviceID is reported, never used).
	BaseDeviceFilesystem string `json:"base_filesystem,omitempty"`
	NextDeviceID         int64  `json:"next_device_id"`
}

// Report is everything Inspect found.
type Report struct {
	Root          string            `json:"docker_root"`
	Prefix        string            `json:"device_prefix"`
	Pool          PoolReport        `json:"pool"`
	Base          *DeviceRecord     `json:"base,omitempty"`
	Images        []ImageReport     `json:"images"`
	Containers    []ContainerReport `json:"containers"`
	Records       int               `json:"records"`
	Disagreements []Disagreement    `json:"disagreements"`
	Notes         []string          `json:"notes,omitempty"`
}

// InspectOptions are Inspect's options.
type InspectOptions struct {
	OpenOptions
	// DM is the device-mapper client (nil: dm.Default when the kernel has
	// device-mapper).
	DM *dm.Client
}

// Inspect refuses while a process holds the store (ErrHeld), then reads
// the store and its pool and compares them. It writes none of Docker's
// files; see ReadPool for the pool.
func Inspect(ctx context.Context, root string, opts InspectOptions) (*Report, error) {
	s, err := Open(root, opts.OpenOptions)
	if err != nil {
		return nil, err
	}
	if err := CheckNotHeld(root); err != nil {
		return nil, err
	}
	pool, err := ReadPool(ctx, s, opts.DM)
	if err != nil {
		return nil, err
	}
	return Compare(s, pool), nil
}

func idp(id uint32) *uint32 { return &id }

func i64p(id uint32) *int64 { n := int64(id); return &n }

// Compare builds the report of a store and its pool's view.
func Compare(s *Store, pool *PoolView) *Report {
	r := &Report{Root: s.Root, Prefix: s.Prefix, Records: len(s.Records), Notes: append([]string(nil), s.Notes...)}
	r.Pool.PoolView = *pool
	r.Notes = append(r.Notes, pool.Notes...)
	if s.DeviceSet != nil {
		r.Pool.BaseDeviceFilesystem, r.Pool.NextDeviceID = s.DeviceSet.BaseDeviceFilesystem, s.DeviceSet.NextDeviceID
	}
	if b, ok := s.Records[BaseHash]; ok {
		r.Base = &b
	}
	add := func(kind, hash string, id *int64, format string, args ...any) {
		r.Disagreements = append(r.Disagreements, Disagreement{Kind: kind, Hash: hash, DeviceID: id, Detail: fmt.Sprintf(format, args...)})
	}
	if t := s.Transaction; t != nil {
		r.Pool.DockerTransaction = t.OpenTransactionID
		if t.OpenTransactionID > pool.TransactionID {
			r.Pool.TransactionOpen = true
			add(KindOpenTransaction, t.DeviceHash, i64p(t.DeviceID), "Docker's transaction %d (device %s, thin id %d) is newer than the pool's %d: it never closed", t.OpenTransactionID, t.DeviceHash, t.DeviceID, pool.TransactionID)
		}
	}
	used := map[string]bool{BaseHash: true}
	device := func(hash string) *uint32 {
		if rec, ok := s.Records[hash]; ok && hash != "" {
			used[hash] = true
			return idp(rec.DeviceID)
		}
		return nil
	}
	for _, img := range s.Images {
		ir := ImageReport{Image: img}
		for _, chain := range img.Layers {
			l, ok := s.Layers[chain]
			if !ok {
				add(KindImageWithoutLayer, "", nil, "image %s names layer %s, which the layer database does not have", img.ID, chain)
				ir.LayerReports = append(ir.LayerReports, LayerReport{Layer: Layer{ChainID: chain}})
				continue
			}
			ir.LayerReports = append(ir.LayerReports, LayerReport{Layer: l, DeviceID: device(l.CacheID)})
			ir.Size += l.Size
		}
		r.Images = append(r.Images, ir)
	}
	chains := make([]string, 0, len(s.Layers))
	for c := range s.Layers {
		chains = append(chains, c)
	}
	sort.Strings(chains)
	for _, c := range chains {
		l := s.Layers[c]
		if device(l.CacheID) == nil {
			add(KindLayerWithoutRecord, l.CacheID, nil, "layer %s has cache-id %s, which has no device record", c, l.CacheID)
		}
	}
	for _, c := range s.Containers {
		cr := ContainerReport{Container: c, RWDevice: device(c.MountID)}
		if c.InitID != "" {
			cr.InitDevice = device(c.InitID)
			if cr.InitDevice == nil {
				add(KindContainerWithoutRecord, c.InitID, nil, "container %s (%s) has init device %s, which has no record", c.ID, c.Name, c.InitID)
			}
		}
		if cr.RWDevice == nil && c.MountID != "" {
			add(KindContainerWithoutRecord, c.MountID, nil, "container %s (%s) has read-write device %s, which has no record", c.ID, c.Name, c.MountID)
		}
		r.Containers = append(r.Containers, cr)
	}
	hashes := make([]string, 0, len(s.Records))
	for h := range s.Records {
		hashes = append(hashes, h)
	}
	sort.Strings(hashes)
	inPool := map[uint32]bool{}
	for _, d := range pool.Devices {
		inPool[d.ID] = true
	}
	byID := map[uint32]string{}
	for _, h := range hashes {
		rec := s.Records[h]
		if other, ok := byID[rec.DeviceID]; ok {
			add(KindSharedThinID, h, i64p(rec.DeviceID), "records %s and %s both name thin id %d", other, h, rec.DeviceID)
		}
		byID[rec.DeviceID] = h
		switch {
		case rec.Deleted:
			add(KindDeletedRecord, h, i64p(rec.DeviceID), "device %s (thin id %d) is marked deleted: Docker meant to delete it later", h, rec.DeviceID)
		case !used[h]:
			add(KindUnreferencedRecord, h, i64p(rec.DeviceID), "device %s (thin id %d) belongs to no layer or container", h, rec.DeviceID)
		}
		if pool.Compared && !inPool[rec.DeviceID] && !rec.Deleted {
			add(KindRecordWithoutThin, h, i64p(rec.DeviceID), "device %s names thin id %d, which the pool does not have", h, rec.DeviceID)
		}
	}
	for _, d := range pool.Devices {
		if _, ok := byID[d.ID]; !ok {
			add(KindThinWithoutRecord, "", i64p(d.ID), "the pool has thin id %d (%d blocks mapped), which no record names", d.ID, d.MappedBlocks)
		}
	}
	if r.Images == nil {
		r.Images = []ImageReport{}
	}
	if r.Containers == nil {
		r.Containers = []ContainerReport{}
	}
	if r.Disagreements == nil {
		r.Disagreements = []Disagreement{}
	}
	return r
}

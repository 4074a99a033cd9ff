package thinpool

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/fs"
	"github.com/thinctl/thinctl/internal/atomicfile"
	"github.com/thinctl/thinctl/internal/failpoint"
)

// registryVersion is the format version written into every registry file.
// Readers refuse files with a newer version.
const registryVersion = 1

// File and directory names under <root>/devicemapper; docs/registry.md
// describes them.
const (
	stateDirName    = "devicemapper"
	dataFileName    = "data"
	metaFileName    = "metadata"
	poolFileName    = "pool.json"
	txFileName      = "transaction.json"
	devicesDirName  = "devices"
	lockFileName    = "lock"
	mountDirName    = "mnt"
	recordExtension = ".json"
)

// poolRecord is pool.json: the pool's configuration and the base device.
type poolRecord struct {
	Version  int    `json:"version"`
	PoolName string `json:"pool_name"`
	// Key identifies the root in device-mapper names and uuids
	// ("<major>:<minor>-<inode>" of the root directory at Init).
	Key          string `json:"key"`
	ExternalPool bool   `json:"external_pool,omitempty"`
	// DataFile and MetadataFile are relative to <root>/devicemapper when
	// the pool uses loop files (absolute for a pool Adopt took over, whose
	// files stay where the other program kept them); DataDevice and MetadataDevice are absolute
	// block device paths otherwise.
	DataFile       string    `json:"data_file,omitempty"`
	MetadataFile   string    `json:"metadata_file,omitempty"`
	DataDevice     string    `json:"data_device,omitempty"`
	MetadataDevice string    `json:"metadata_device,omitempty"`
	DataSize       uint64    `json:"data_size"`
	MetadataSize   uint64    `json:"metadata_size"`
	BlockSize      uint64    `json:"block_size"`
	NoDiscard      bool      `json:"no_discard,omitempty"`
	MinFreeSpace   float64   `json:"min_free_space"`
	Filesystem     fs.Type   `json:"filesystem"`
	MkfsArgs       []string  `json:"mkfs_args,omitempty"`
	MountOptions   []string  `json:"mount_options,omitempty"`
	BaseDeviceID   uint32    `json:"base_device_id"`
	BaseSize       uint64    `json:"base_size"`
	BaseUUID       string    `json:"base_uuid"`
	NextDeviceID   uint32    `json:"next_device_id"`
	Created        time.Time `json:"created"`
	// AdoptedFrom says which other program's pool Adopt took over ("" for
	// a pool Init made); ForeignTransactionID is the pool's transaction id
	// as that program left it (Adopt does not change it).
	AdoptedFrom          string `json:"adopted_from,omitempty"`
	ForeignTransactionID uint64 `json:"foreign_transaction_id,omitempty"`
}

// deviceRecord is devices/<id>.json: one thin device.
type deviceRecord struct {
	Version     int       `json:"version"`
	ID          string    `json:"id"`
	DeviceID    uint32    `json:"device_id"`
	Size        uint64    `json:"size"`
	Initialized bool      `json:"initialized"`
	Deleted     bool      `json:"deleted"`
	Parent      string    `json:"parent"`
	Created     time.Time `json:"created"`
	// GrowPending is set when the device is bigger than its parent's
	// filesystem; the first activation (ext4) or mount (xfs) grows the
	// filesystem and clears it.
	GrowPending bool `json:"grow_pending,omitempty"`
	// Labels are the caller's string pairs (see labels.go), written in
	// the same atomic record write as the device itself.
	Labels map[string]string `json:"labels,omitempty"`
}

// registry reads and writes the JSON files under <root>/devicemapper.
type registry struct {
	dir string // <root>/devicemapper
}

func (r registry) poolPath() string   { return filepath.Join(r.dir, poolFileName) }
func (r registry) txPath() string     { return filepath.Join(r.dir, txFileName) }
func (r registry) devicesDir() string { return filepath.Join(r.dir, devicesDirName) }
func (r registry) devicePath(id string) string {
	return filepath.Join(r.dir, devicesDirName, id+recordExtension)
}

// registryWrite is how every registry file is written: atomically and
// durably, with the crash tests' failpoints around the rename.
var registryWrite = atomicfile.Options{
	BeforeRename: func() { failpoint.Inject(failpoint.RegistryBeforeRen) },
	AfterRename:  func() { failpoint.Inject(failpoint.RegistryAfterRen) },
}

// removeFileDurable removes path (missing is fine) and fsyncs its directory.
func removeFileDurable(path string) error {
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return errors.Wrapf(err, "registry: remove %s", path)
	}
	return errors.Wrap(atomicfile.SyncDir(filepath.Dir(path)), "registry")
}

// writeJSON marshals v and writes it atomically.
func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return errors.Wrapf(err, "registry: encode %s", path)
	}
	return errors.Wrap(atomicfile.Write(path, append(data, '\n'), registryWrite), "registry")
}

// readJSON reads path into v. A missing file returns an error for which
// os.IsNotExist holds; anything that does not decode into v, or carries a
// version this code does not know, is ErrRegistryCorrupt naming the file.
// The file is never modified.
func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return errors.Wrapf(ErrRegistryCorrupt, "%s is empty; restore it from a backup (it is never rewritten)", path)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		return errors.Wrapf(ErrRegistryCorrupt, "%s does not decode (%v); restore it from a backup (it is never rewritten)", path, err)
	}
	if dec.More() {
		return errors.Wrapf(ErrRegistryCorrupt, "%s has trailing data after the JSON document", path)
	}
	return nil
}

func checkVersion(path string, v int) error {
	switch {
	case v == registryVersion:
		return nil
	case v > registryVersion:
		return errors.Wrapf(ErrRegistryCorrupt, "%s has format version %d; this version of thinpool reads version %d: upgrade", path, v, registryVersion)
	default:
		return errors.Wrapf(ErrRegistryCorrupt, "%s has no valid format version (got %d)", path, v)
	}
}

// loadPool reads pool.json; ErrNotInitialized when it does not exist.
func (r registry) loadPool() (poolRecord, error) {
	var p poolRecord
	path := r.poolPath()
	if err := readJSON(path, &p); err != nil {
		if os.IsNotExist(err) {
			return p, errors.Wrapf(ErrNotInitialized, "%s does not exist", path)
		}
		return p, err
	}
	if err := checkVersion(path, p.Version); err != nil {
		return p, err
	}
	if p.PoolName == "" || p.Key == "" || p.BlockSize == 0 || p.BaseDeviceID == 0 || p.BaseDeviceID > maxDeviceID {
		return p, errors.Wrapf(ErrRegistryCorrupt, "%s lacks pool_name, key, block_size or a valid base_device_id", path)
	}
	return p, nil
}

// savePool writes pool.json.
func (r registry) savePool(p poolRecord) error {
	p.Version = registryVersion
	return writeJSON(r.poolPath(), p)
}

// loadDevice reads one device record; ErrDeviceNotFound when it does not exist.
func (r registry) loadDevice(id string) (deviceRecord, error) {
	var d deviceRecord
	path := r.devicePath(id)
	if err := readJSON(path, &d); err != nil {
		if os.IsNotExist(err) {
			return d, errors.Wrapf(ErrDeviceNotFound, "device %q", id)
		}
		return d, err
	}
	if err := validateDeviceRecord(path, id, d); err != nil {
		return d, err
	}
	return d, nil
}

func validateDeviceRecord(path, id string, d deviceRecord) error {
	if err := checkVersion(path, d.Version); err != nil {
		return err
	}
	if d.ID != id {
		return errors.Wrapf(ErrRegistryCorrupt, "%s records id %q, not %q", path, d.ID, id)
	}
	if d.DeviceID == 0 || d.DeviceID > maxDeviceID {
		return errors.Wrapf(ErrRegistryCorrupt, "%s has device_id %d outside 1..%d", path, d.DeviceID, maxDeviceID)
	}
	return nil
}

// saveDevice writes one device record.
func (r registry) saveDevice(d deviceRecord) error {
	d.Version = registryVersion
	return writeJSON(r.devicePath(d.ID), d)
}

// removeDevice deletes one device record.
func (r registry) removeDevice(id string) error {
	return removeFileDurable(r.devicePath(id))
}

// listDevices reads every device record, sorted by id. Temporary files
// left by an interrupted write (names starting with '.') are skipped. The
// records are read by a few goroutines at once (a root may hold tens of
// thousands); when some fail, the error of the first id in order is
// returned, so the message does not depend on scheduling.
func (r registry) listDevices() ([]deviceRecord, error) {
	entries, err := os.ReadDir(r.devicesDir())
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, errors.Wrapf(err, "registry: read %s", r.devicesDir())
	}
	ids := make([]string, 0, len(entries))
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || !strings.HasSuffix(name, recordExtension) || !e.Type().IsRegular() {
			continue
		}
		if id := strings.TrimSuffix(name, recordExtension); ValidateID(id) == nil {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids) // ReadDir sorts by file name; ".json" can reorder ids
	out := make([]deviceRecord, len(ids))
	errs := make([]error, len(ids))
	workers := min(len(ids)/64+1, 2*runtime.GOMAXPROCS(0))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < len(ids); i = int(next.Add(1) - 1) {
				out[i], errs[i] = r.loadDevice(ids[i])
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// loadTx reads the open transaction; nil when there is none.
func (r registry) loadTx() (*txRecord, error) {
	var t txRecord
	path := r.txPath()
	if err := readJSON(path, &t); err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	if err := checkVersion(path, t.Version); err != nil {
		return nil, err
	}
	if err := t.validate(); err != nil {
		return nil, errors.Wrapf(ErrRegistryCorrupt, "%s: %v", path, err)
	}
	return &t, nil
}

// saveTx persists the open transaction.
func (r registry) saveTx(t txRecord) error {
	t.Version = registryVersion
	return writeJSON(r.txPath(), t)
}

// clearTx removes the transaction record. The removal is not fsynced: by
// then what the transaction did is durable (the message committed by the
// kernel, the record written or removed with fsyncs), and recovery of a
// transaction is idempotent, so a transaction.json that reappears after a
// power cut is only finished again. Any later transaction replaces the
// file durably before its message, so an old one never resurfaces after a
// newer one started.
func (r registry) clearTx() error {
	if err := os.Remove(r.txPath()); err != nil && !os.IsNotExist(err) {
		return errors.Wrapf(err, "registry: remove %s", r.txPath())
	}
	return nil
}

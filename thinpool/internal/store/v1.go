package store

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/errdefs"
)

// Version 1 of the registry (thinctl up to the journal): one JSON file per
// device under devices/ and transaction.json for the message in flight.
// Only migration reads it now (migrate.go); docs/registry.md keeps its
// description.

// Names of the v1 files under <root>/devicemapper.
const (
	txFileName      = "transaction.json"
	devicesDirName  = "devices"
	recordExtension = ".json"
)

// v1Registry reads the files of a v1 root.
type v1Registry struct {
	dir string // <root>/devicemapper
}

func (r v1Registry) txPath() string     { return filepath.Join(r.dir, txFileName) }
func (r v1Registry) devicesDir() string { return filepath.Join(r.dir, devicesDirName) }
func (r v1Registry) devicePath(id string) string {
	return filepath.Join(r.dir, devicesDirName, id+recordExtension)
}

// readJSON reads path into v. A missing file returns an error for which
// os.IsNotExist holds; anything that does not decode into v is
// ErrCorrupt naming the file. The file is never modified.
func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return errors.Wrapf(ErrCorrupt, "%s is empty; restore it from a backup (it is never rewritten)", path)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		return errdefs.Wrapf(ErrCorrupt, err, "%s does not decode (%v); restore it from a backup (it is never rewritten)", path, err)
	}
	if dec.More() {
		return errors.Wrapf(ErrCorrupt, "%s has trailing data after the JSON document", path)
	}
	return nil
}

// checkVersion accepts the format versions in want.
func checkVersion(path string, v int, want ...int) error {
	for _, w := range want {
		if v == w {
			return nil
		}
	}
	newest := want[len(want)-1]
	if v > newest {
		return errors.Wrapf(ErrCorrupt, "%s has format version %d; this version of thinpool reads up to version %d: upgrade", path, v, newest)
	}
	return errors.Wrapf(ErrCorrupt, "%s has no valid format version (got %d)", path, v)
}

// Get reads one v1 device record; ErrNotFound when missing.
func (r v1Registry) Get(id string) (Device, error) {
	var d Device
	path := r.devicePath(id)
	if err := readJSON(path, &d); err != nil {
		if os.IsNotExist(err) {
			return d, errors.Wrapf(ErrNotFound, "device %q", id)
		}
		return d, err
	}
	if err := checkVersion(path, d.Version, V1); err != nil {
		return d, err
	}
	if err := validateDeviceRecord(path, id, d); err != nil {
		return d, err
	}
	return d, nil
}

// List reads every v1 device record, sorted by id; the error of
// the first bad record in id order, if any. Temporary files left by an
// interrupted write (names starting with '.') are skipped.
func (r v1Registry) List() ([]Device, error) {
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
	sort.Strings(ids)
	out := make([]Device, 0, len(ids))
	for _, id := range ids {
		d, err := r.Get(id)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// LeftTx reads transaction.json; nil when there is none.
func (r v1Registry) LeftTx() (*Tx, error) {
	var t Tx
	path := r.txPath()
	if err := readJSON(path, &t); err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	if err := checkVersion(path, t.Version, V1); err != nil {
		return nil, err
	}
	// Version 1 never carried the new device in the transaction; recovery
	// decides by the record's presence, as version 1 did.
	t.Device = nil
	if err := t.Validate(); err != nil {
		return nil, errdefs.Wrapf(ErrCorrupt, err, "%s: %v", path, err)
	}
	return &t, nil
}

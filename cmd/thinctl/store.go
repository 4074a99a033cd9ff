package main

import (
	"github.com/thinctl/thinctl/driver"
)

// deviceInfo is one device as list and info show it; its JSON form is
// part of thinctl's interface and must not change.
type deviceInfo struct {
	ID        string `json:"id"`
	Parent    string `json:"parent"`
	DeviceID  uint32 `json:"device_id"`
	SizeBytes uint64 `json:"size_bytes"`
	Active    bool   `json:"active"`
	Mounted   bool   `json:"mounted"`
	MountPath string `json:"mount_path"`
	Deleted   bool   `json:"deleted"`

	devicePath string // /dev/mapper/<name> while active (text output only)
}

// poolStatus is "pool status"; its JSON form is part of thinctl's interface.
type poolStatus struct {
	Driver             string `json:"driver"`
	DriverReason       string `json:"driver_reason"`
	PoolName           string `json:"pool_name"`
	TransactionID      uint64 `json:"transaction_id"`
	DataUsedBytes      uint64 `json:"data_used_bytes"`
	DataTotalBytes     uint64 `json:"data_total_bytes"`
	MetadataUsedBytes  uint64 `json:"metadata_used_bytes"`
	MetadataTotalBytes uint64 `json:"metadata_total_bytes"`
	State              string `json:"state"`
	Devices            int    `json:"devices"`

	details []driver.KV // extra text-only lines (block size, files, backend facts)
}

// problem is one inconsistency "check" found.
type problem struct {
	Kind   string `json:"kind"`
	ID     string `json:"id"`
	Detail string `json:"detail"`

	fixed bool
}

// checkReport is "check"'s result; its JSON form is part of the interface.
type checkReport struct {
	Consistent bool      `json:"consistent"`
	Problems   []problem `json:"problems"`
}

// store is what the commands need from a backend. dmStore serves it with
// thinpool for devicemapper, layerStore with a driver.Driver otherwise, so
// every command but the devicemapper-only ones behaves the same under every
// driver.
type store interface {
	status() (poolStatus, error)
	create(id, parent string, size uint64) error
	mount(id string, opts []string) (string, error)
	unmount(id string) error
	// remove deletes id; deferred reports a deletion postponed because the
	// device is busy (err then says who holds it).
	remove(id string) (deferred bool, err error)
	devices() ([]deviceInfo, error)
	device(id string) (deviceInfo, error)
	check(repair bool) (checkReport, error)
	gc() ([]string, error)
	down() error
	destroy(force bool) error
	close() error
	// label names the pool in messages: "pool thinctl-…", "overlay2 driver home /…".
	label() string
}

// thinStore adds the devicemapper-only commands.
type thinStore interface {
	store
	grow(data, metadata uint64) (before, after poolStatus, err error)
	activate(id string) (string, error)
	deactivate(id string) error
}

package main

import (
	"errors"
	"io"
	"strconv"
	"strings"

	"github.com/thinctl/thinctl/driver"

	// Importing the backends registers them with the driver package; every
	// command reaches them only through it.
	_ "github.com/thinctl/thinctl/driver/devicemapper"
	_ "github.com/thinctl/thinctl/overlayfallback/aufs"
	_ "github.com/thinctl/thinctl/overlayfallback/overlay2"
)

// devicemapper names the thin-pool backend: its flags, commands and hints
// are the devicemapper-only ones.
const devicemapper = "devicemapper"

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

func deviceFromLayer(l driver.LayerInfo) deviceInfo {
	return deviceInfo{ID: l.ID, Parent: l.Parent, DeviceID: l.DeviceID, SizeBytes: uint64(l.SizeBytes),
		Active: l.Active, Mounted: l.Mounted, MountPath: l.MountPath, Deleted: l.Deleted, devicePath: l.DevicePath}
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
	// Fix is the command that fixes a health problem ("" for the others).
	Fix string `json:"fix,omitempty"`

	fixed bool
}

// checkReport is "check"'s result; its JSON form is part of the interface.
type checkReport struct {
	Consistent bool      `json:"consistent"`
	Problems   []problem `json:"problems"`
}

func reportFromDriver(r driver.CheckReport, root string) checkReport {
	out := checkReport{Consistent: r.Consistent, Problems: []problem{}}
	for _, p := range r.Problems {
		out.Problems = append(out.Problems, problem{Kind: p.Kind, ID: p.ID, Detail: p.Detail, Fix: fixCommand(p.Fix, p.ID, root), fixed: p.Fixed})
	}
	return out
}

// reason is why the call's driver runs, as pool init and pool status say it.
func (c *call) reason() string {
	if c.ch.Explicit {
		return "chosen with --driver"
	}
	return c.ch.Reason
}

// choose resolves --driver without changing anything.
func (c *call) choose() error {
	ch, err := c.app.choose(c.g.root, c.g.driver)
	var amb *driver.AmbiguousError
	if errors.As(err, &amb) {
		return &hintedError{
			msg:  "--driver auto cannot choose: " + strings.Join(amb.Homes, " and ") + " both exist",
			hint: "name one with --driver (" + strings.Join(amb.Names, " or ") + "), or remove the other with --driver NAME pool destroy",
		}
	}
	if err != nil {
		return err
	}
	c.ch = ch
	if c.cmd.dmOnly && ch.Name != devicemapper {
		return &dmOnlyError{what: c.cmd.name, driver: ch.Name}
	}
	return nil
}

// options are what the driver package needs from the command line: the
// progress bar and the --debug log.
func (c *call) options(storageOpt map[string]string) driver.Options {
	o := driver.Options{StorageOpt: storageOpt, Progress: c.progress()}
	if c.g.debug {
		w := c.app.stderr
		o.Debugf = func(format string, args ...any) { writeDebug(w, format, args...) }
	}
	return o
}

// withDriver opens the backend --driver names (its state must exist; see
// "pool init"), runs f and closes the driver, leaving mounts as they are.
func (c *call) withDriver(f func(d driver.Driver) error) error {
	if err := c.choose(); err != nil {
		return err
	}
	d, err := driver.Open(c.ctx(), c.ch, c.options(nil))
	if err != nil {
		return err
	}
	defer closeDriver(d)
	return f(d)
}

// closeDriver releases the driver's handles; mounts stay for the user.
func closeDriver(d driver.Driver) {
	if cl, ok := d.(io.Closer); ok {
		cl.Close()
	}
}

// need returns d as the optional interface T, or the error saying this
// driver does not offer the command.
func need[T any](c *call, d driver.Driver) (T, error) {
	t, ok := d.(T)
	if !ok {
		return t, &dmOnlyError{what: c.cmd.name, driver: d.String()}
	}
	return t, nil
}

// status reads the driver's pool status in the command's form.
func (c *call) status(d driver.Driver) (poolStatus, error) {
	s, err := need[driver.PoolStatuser](c, d)
	if err != nil {
		return poolStatus{}, err
	}
	st, err := s.PoolStatus()
	if err != nil {
		return poolStatus{}, err
	}
	ps := poolStatus{
		Driver:             st.Driver,
		DriverReason:       c.reason(),
		PoolName:           st.PoolName,
		TransactionID:      st.TransactionID,
		DataUsedBytes:      st.DataUsed,
		DataTotalBytes:     st.DataTotal,
		MetadataUsedBytes:  st.MetadataUsed,
		MetadataTotalBytes: st.MetadataTotal,
		State:              st.State,
		Devices:            st.Devices,
		details:            st.Details,
	}
	if st.NeedsCheck {
		ps.details = append([]driver.KV{{Key: "Needs check", Value: "yes (run " + fixCommand("repair", "", c.rootFlag()) + ")"}}, ps.details...)
	}
	for i, hp := range poolHealth(d) {
		ps.details = append(ps.details[:i:i], append([]driver.KV{{Key: "Problem", Value: hp.Cause + "; fix: " + fixCommand(string(hp.Fix), "", c.rootFlag())}}, ps.details[i:]...)...)
	}
	return ps, nil
}

// label names the pool in messages: "pool thinctl-…", "overlay2 driver
// home /…".
func (c *call) label(st poolStatus) string {
	if st.PoolName != "" {
		return "pool " + st.PoolName
	}
	return c.ch.Name + " driver home " + c.ch.Home
}

// detail returns the value of a status detail, "" when absent.
func (st poolStatus) detail(key string) string {
	for _, kv := range st.details {
		if kv.Key == key {
			return kv.Value
		}
	}
	return ""
}

// storageOpt turns the pool init flags into the devicemapper backend's
// storage options (Docker's dm.* names).
func (c *call) storageOpt() map[string]string {
	o := c.opts
	m := map[string]string{}
	size := func(k string, n uint64) {
		if n != 0 {
			m[k] = strconv.FormatUint(n, 10)
		}
	}
	size("dm.loopdatasize", o.dataSize)
	size("dm.loopmetadatasize", o.metadataSize)
	size("dm.blocksize", o.blockSize)
	size("dm.basesize", o.baseSize)
	str := func(k, v string) {
		if v != "" {
			m[k] = v
		}
	}
	str("dm.fs", o.fsType)
	str("dm.mkfsarg", strings.Join(o.mkfsArgs, "\n"))
	str("dm.mountopt", strings.Join(o.mountOpts, ","))
	if o.minFreeSet {
		m["dm.min_free_space"] = strconv.FormatFloat(o.minFree, 'f', -1, 64) + "%"
	}
	str("dm.datadev", o.dataDev)
	str("dm.metadatadev", o.metadataDev)
	str("dm.thinpooldev", o.thinpoolDev)
	if o.noDiscard {
		m["dm.blkdiscard"] = "false"
	}
	return m
}

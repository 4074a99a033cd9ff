package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/thinctl/thinctl/driver"
)

// writeJSON prints v as one indented JSON document.
func writeJSON(w io.Writer, v interface{}) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// writeTable prints rows under headers in aligned columns, like lvs.
func writeTable(w io.Writer, headers []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(headers, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// writeFields prints "Key:  value" lines with aligned values, like
// dmsetup info.
func writeFields(w io.Writer, fields []driver.KV) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, f := range fields {
		fmt.Fprintf(tw, "%s:\t%s\n", f.Key, f.Value)
	}
	return tw.Flush()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// sizeText prints a size, "-" when unknown or unlimited.
func sizeText(n uint64) string {
	if n == 0 {
		return "-"
	}
	return humanSize(n)
}

// deviceIDText prints a thin device id, "-" for drivers without one.
func deviceIDText(d deviceInfo) string {
	if d.DeviceID == 0 {
		return "-"
	}
	return strconv.FormatUint(uint64(d.DeviceID), 10)
}

// writeDeviceList prints "list".
func writeDeviceList(w io.Writer, ds []deviceInfo) error {
	rows := make([][]string, 0, len(ds))
	for _, d := range ds {
		rows = append(rows, []string{d.ID, dash(d.Parent), deviceIDText(d), sizeText(d.SizeBytes),
			yesNo(d.Active), yesNo(d.Mounted), yesNo(d.Deleted), dash(d.MountPath)})
	}
	return writeTable(w, []string{"ID", "PARENT", "DEV_ID", "SIZE", "ACTIVE", "MOUNTED", "DELETED", "MOUNT_PATH"}, rows)
}

// writeDeviceInfo prints "info".
func writeDeviceInfo(w io.Writer, d deviceInfo) error {
	size := "-"
	if d.SizeBytes > 0 {
		size = fmt.Sprintf("%s (%d bytes)", humanSize(d.SizeBytes), d.SizeBytes)
	}
	fields := []driver.KV{
		{Key: "ID", Value: d.ID},
		{Key: "Parent", Value: dash(d.Parent)},
		{Key: "Device ID", Value: deviceIDText(d)},
		{Key: "Size", Value: size},
		{Key: "Active", Value: yesNo(d.Active)},
	}
	if d.devicePath != "" {
		fields = append(fields, driver.KV{Key: "Device path", Value: d.devicePath})
	}
	fields = append(fields,
		driver.KV{Key: "Mounted", Value: yesNo(d.Mounted)},
		driver.KV{Key: "Mount path", Value: dash(d.MountPath)},
		driver.KV{Key: "Deleted", Value: yesNo(d.Deleted)},
	)
	return writeFields(w, fields)
}

// usageLine renders used/total as "12.5  [#.........]  256.0M of 2.0G".
func usageLine(used, total uint64) string {
	if total == 0 {
		return "-"
	}
	p := percent(used, total)
	return fmt.Sprintf("%5.1f  %s  %s of %s", p, bar(p, 10), humanSize(used), humanSize(total))
}

// driverText renders a driver and why it was chosen: "overlay2 (…)".
func driverText(name, reason string) string {
	if reason == "" {
		return name
	}
	return name + " (" + reason + ")"
}

// writePoolStatus prints "pool status".
func writePoolStatus(w io.Writer, st poolStatus) error {
	fields := []driver.KV{{Key: "Driver", Value: driverText(st.Driver, st.DriverReason)}}
	if st.PoolName != "" {
		fields = append(fields, driver.KV{Key: "Pool", Value: st.PoolName})
	}
	fields = append(fields, driver.KV{Key: "State", Value: st.State})
	if st.Driver == devicemapper {
		fields = append(fields, driver.KV{Key: "Transaction ID", Value: strconv.FormatUint(st.TransactionID, 10)})
	}
	fields = append(fields, driver.KV{Key: "Data%", Value: usageLine(st.DataUsedBytes, st.DataTotalBytes)})
	if st.Driver == devicemapper {
		fields = append(fields, driver.KV{Key: "Meta%", Value: usageLine(st.MetadataUsedBytes, st.MetadataTotalBytes)})
	}
	fields = append(fields, driver.KV{Key: "Devices", Value: strconv.Itoa(st.Devices)})
	fields = append(fields, st.details...)
	return writeFields(w, fields)
}

// writeCheck prints "check".
func writeCheck(w io.Writer, r checkReport, repair bool) error {
	if len(r.Problems) == 0 {
		_, err := fmt.Fprintln(w, "consistent: no problems found")
		return err
	}
	headers := []string{"KIND", "ID", "DETAIL"}
	if repair {
		headers = append(headers, "FIXED")
	}
	rows := make([][]string, 0, len(r.Problems))
	fixed := 0
	for _, p := range r.Problems {
		row := []string{p.Kind, dash(p.ID), p.Detail}
		if repair {
			row = append(row, yesNo(p.fixed))
		}
		if p.fixed {
			fixed++
		}
		rows = append(rows, row)
	}
	if err := writeTable(w, headers, rows); err != nil {
		return err
	}
	noun := "problems"
	if len(r.Problems) == 1 {
		noun = "problem"
	}
	if repair {
		_, err := fmt.Fprintf(w, "%d %s found, %d fixed\n", len(r.Problems), noun, fixed)
		return err
	}
	_, err := fmt.Fprintf(w, "%d %s found\n", len(r.Problems), noun)
	return err
}

package main

import (
	"os"
	"runtime"
	"runtime/debug"

	"github.com/thinctl/thinctl/dm"
	"github.com/thinctl/thinctl/driver"
)

// version is thinctl's version, set at build time with
// -ldflags "-X main.version=v1.2.3"; otherwise the module version or "dev".
var version = ""

// versionInfo is "version"'s JSON document.
type versionInfo struct {
	Version   string `json:"version"`
	GoVersion string `json:"go_version"`
	Kernel    string `json:"kernel,omitempty"`

	deviceMapper string // the kernel's dm ioctl version, text output only
}

func thinctlVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// dmVersion returns the kernel's device-mapper ioctl version when the
// control node exists and opens (root only); "" otherwise. It never
// creates the node.
func dmVersion() string {
	if _, err := os.Stat("/dev/mapper/control"); err != nil {
		return ""
	}
	c, err := dm.Default()
	if err != nil {
		return ""
	}
	v := c.KernelVersion()
	return v.String()
}

func runVersion(c *call) error {
	v := versionInfo{Version: thinctlVersion(), GoVersion: runtime.Version(), Kernel: c.app.uname()}
	if c.json() {
		return writeJSON(c.stdout(), v)
	}
	fields := []driver.KV{
		{Key: "Version", Value: v.Version},
		{Key: "Go", Value: v.GoVersion},
		{Key: "Kernel", Value: dash(v.Kernel)},
	}
	if c.app.geteuid() == 0 {
		if dv := c.app.dmVersion(); dv != "" {
			fields = append(fields, driver.KV{Key: "Device-mapper", Value: dv})
		}
	}
	return writeFields(c.stdout(), fields)
}

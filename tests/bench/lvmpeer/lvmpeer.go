// Package lvmpeer is what the benchmarks that run lvm2 beside thinctl
// (tests/bench's lvm peer, the CSI driver's comparison with TopoLVM-style
// lvcreate) share: lvm2's configuration in the guest.
package lvmpeer

import "fmt"

// Config is lvm.conf for a guest without udev or lvmetad: lvm makes the
// /dev nodes itself, scans only the loop device loop, keeps no backups or
// archives, runs no dmeventd and no thin_check (thinctl runs none either),
// and keeps its locks under dir.
func Config(loop, dir string) string {
	return fmt.Sprintf(`devices {
	filter = [ "a|^%s$|", "r|.*|" ]
	obtain_device_list_from_udev = 0
	use_devicesfile = 0
	hints = "none"
}
activation {
	udev_sync = 0
	udev_rules = 0
	monitoring = 0
}
global {
	thin_check_executable = ""
	locking_dir = "%s/lock"
	use_lvmlockd = 0
}
backup {
	backup = 0
	archive = 0
}
`, loop, dir)
}

// Package snapshotter is thinctl's containerd snapshotter: containerd's
// snapshots.Snapshotter over a thinctl devicemapper thin pool (package
// thinpool). Each snapshot is one thin device; its mount is one ext4 or
// xfs mount of the /dev/mapper device (read-only for views), so a VM
// runtime (Kata Containers, firecracker-containerd) can hand the block
// device to a guest. containerd's view of a snapshot (name, kind, parent,
// times, labels) lives in the device's registry record as device labels,
// written in the same atomic write as the device: a crash at any point
// leaves snapshots and thin devices in step, with nothing for a human to
// repair. cmd/thinctl-snapshotter serves it to containerd as a proxy
// plugin; docs/containerd.md describes the setup.
package snapshotter

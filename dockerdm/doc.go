// Package dockerdm reads a store that Docker's devicemapper graph driver
// left behind (Docker 1.x through 24; the driver was removed in 25), without
// the old daemon and without changing it.
//
// A store is the directory Docker calls its data root (/var/lib/docker):
//
//	devicemapper/devicemapper/{data,metadata}  sparse files behind the loop devices of the pool
//	devicemapper/metadata/<hash>               one JSON record per thin device (the base: "base")
//	devicemapper/metadata/deviceset-metadata   next_device_id, the base's UUID and filesystem
//	devicemapper/metadata/transaction-metadata Docker's last (possibly still open) transaction
//	image/devicemapper/imagedb/content/sha256/ image configurations (their rootfs.diff_ids)
//	image/devicemapper/repositories.json       tags
//	image/devicemapper/layerdb/sha256/<chain>/ cache-id (the device's hash), diff, parent, size
//	image/devicemapper/layerdb/mounts/<ctr>/   mount-id, init-id, parent of a container's layer
//	containers/<ctr>/config.v2.json            a container's name and image
//
// Open reads those files only (os.Open, never a write) and Inspect adds the
// pool's own view: its superblock and the thin devices in its metadata
// (thin_dump of the metadata file when the pool is down, of a metadata
// snapshot when it is up), and reports every disagreement between the two.
// Export writes images (and containers' read-write layers) as a docker
// save archive; Adopt hands the pool to a thinctl root in place
// (thinpool.Adopt), after which the store is no longer Docker's to use.
// Neither writes Docker's files.
//
// Nothing here trusts next_device_id, the id file inside a layer or the
// initialized flag: the device ids come from each device's own record and
// are checked against the pool.
//
// Facts about the format come from Docker's public sources (moby v20.10
// daemon/graphdriver/devmapper, layer, image) and were checked against
// Debian's docker.io 20.10.24 in the VM rig (tests/docker); the code is ours.
package dockerdm

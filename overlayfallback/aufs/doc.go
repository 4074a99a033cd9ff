// Package aufs is thinctl's aufs backend: a file-level fallback for hosts
// whose kernel carries the out-of-tree aufs module and no usable
// device-mapper.
//
// Layout under the driver home:
//
//	diff/<id>    the layer's own files: its aufs branch
//	layers/<id>  the layer's ancestors, one id per line, nearest first
//	mnt/<id>     where Get mounts the union
//
// Get mounts "br:diff/<id>=rw:diff/<parent>=ro+wh:..." with dirperm1 (when
// the module knows it) and xino=/dev/shm/aufs.xino. Mount data is limited
// to one page, so the branches of a deep chain that do not fit are added
// by remounts appending them in batches. Before its first layer mount the
// driver makes mnt/ a private mount (a bind of itself), so layer mounts do
// not leak into other mount namespaces; Cleanup releases it.
//
// Deletions are ".wh.<name>" whiteout files and replaced directories carry
// ".wh..wh..opq", the spelling of the OCI layer format, so Diff, Changes,
// DiffSize and ApplyDiff work on the diff directories without mounting and
// leave out aufs's own .wh..wh.aufs, .wh..wh.plnk, .wh..wh.orph and
// .wh..wh.<name>.<n> entries with everything inside them.
//
// layers/<id> is written crash-safely (internal/atomicfile: temporary
// file, fsync, rename, directory fsync). Remove unmounts the layer, then
// renames mnt/<id> and diff/<id> to <id>-removing before deleting them;
// New deletes such leftovers of an interrupted removal.
//
// Importing the package registers the backend as "aufs" with
// driver.Register and does nothing else.
//
// New fails with an error wrapping driver.ErrNotSupported when
// /proc/filesystems lacks aufs (after trying to load the module), as on
// mainline kernels.
package aufs

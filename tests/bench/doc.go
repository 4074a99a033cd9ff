// Command thinctl-bench measures thinctl against dmsetup, the bare-ioctl
// floor and overlay2 on a kernel with device-mapper (the VM rig or a native
// host), and turns a run's output into docs/BENCHMARKS.md.
//
//	thinctl-bench run [-quick] [flags]     as root, on a device-mapper kernel
//	thinctl-bench report -in console.log   on the host: tables, plots, markdown
//
// run prints progress, then the results (gzip+base64 between BENCHJSON
// markers, a CPU profile between BENCHPROF markers) and ends with exactly
// seven "BENCH name=value" lines. tests/bench/run.sh drives both.
//
// The measurements, all on one pool per run and compared as ratios:
//
//  1. operation cost: create_snap+activate and deactivate+delete of N thin
//     snapshots through the thinpool library, through dmsetup processes (as
//     containerd's devmapper snapshotter runs them) and through bare dm
//     ioctls (the floor), with the metadata commits and disk flushes each
//     path causes, a breakdown of the library's pieces and a CPU profile;
//  2. scale: the library's per-device cost with 100, 1,000 and 10,000
//     devices already in the pool, and thinpool.Open of such a root;
//  3. copy-on-write: the first 4 KiB write into a big file of the parent
//     layer, thin snapshot against overlay2 copy-up;
//  4. page cache: ten layers reading one parent file, thin against overlay2;
//  5. creating and mounting a layer, thin against overlay2.
package main

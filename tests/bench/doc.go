// Command thinctl-bench measures thinctl against dmsetup, the bare-ioctl
// floor and overlay2 on a kernel with device-mapper (the VM rig or a native
// host), and turns a run's output into docs/BENCHMARKS.md.
//
//	thinctl-bench run [-quick] [flags]     as root, on a device-mapper kernel
//	thinctl-bench report -in console.log   on the host: tables, plots, markdown
//
// run prints progress, then the results (gzip+base64 between BENCHJSON
// markers, a CPU profile between BENCHPROF markers) and ends with one
// "BENCH name=value" line per figure; report prints the same lines for the
// merged runs and then one "TARGET" line per figure with its goal and
// verdict. tests/bench/run.sh drives both: make bench boots the VM twice
// (without udev: every measurement; with udev: measurement 1 again).
//
// The measurements, all on one pool per run and compared as ratios:
//
//  1. operation cost: create_snap+activate and deactivate+delete of N thin
//     snapshots through the thinpool library, through dmsetup processes (as
//     containerd's devmapper snapshotter runs them) and through bare dm
//     ioctls (the floor), with the metadata commits and disk flushes each
//     path causes, a breakdown of the library's pieces and a CPU profile;
//     the library with discards on (the default); again with udev running;
//  2. scale: the library's per-device cost with 100, 1,000 and 10,000
//     devices already in the pool, thinpool.Open of such a root, and a
//     child process (thinctl-bench probe) that opens it and lists it: its
//     Open time and peak RSS;
//  3. copy-on-write: the first 4 KiB write into a big file of the parent
//     layer, thin snapshot against overlay2 copy-up;
//  4. page cache: ten layers reading one parent file, thin against overlay2;
//  5. creating and mounting a layer, thin against overlay2;
//  6. the tools an operator would pick instead, one process per action:
//     `thinctl create --activate` / `thinctl remove` against `dmsetup
//     message` + `dmsetup create` and lvm2's thin snapshots (`lvcreate -s
//     -kn -ay`, `lvremove -f`);
//  7. concurrency: create+activate throughput of 1, 4 and 8 goroutines on
//     one Pool.
package main

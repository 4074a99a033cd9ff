// Package reliability holds thinctl's reliability suite: crashes at every
// failpoint, power cuts, concurrent writers, bad input, busy devices, a
// full pool and file permissions. The tests run the thinctl command as
// separate processes, the way an operator or a crashed daemon would, and
// judge the result with independent oracles (dmsetup, thin_dump,
// thin_check, the registry files' bytes).
//
// Most tests need a kernel with device-mapper and carry the vm build tag;
// run them with
//
//	tests/vm/run.sh --pkg ./tests/reliability --pkg ./cmd/thinctl --run 'TestReliability'
//
// (the cmd/thinctl test binary serves as thinctl in the guest when no
// thinctl binary is on PATH; --extra-bin bin/thinctl works too).
// THINCTL_RELIABILITY_FULL=1 (or a file testdata/full, for the VM rig,
// which does not pass the environment on) runs the whole crash matrix and
// the concurrency test at full size; THINCTL_RELIABILITY_OPS=N (or
// testdata/ops holding N) sets the operations per concurrent worker.
// docs/RELIABILITY.md lists what is covered and the figures of the last
// run. fuzz.sh runs every fuzz target of the repository for a CI-sized
// time.
package reliability

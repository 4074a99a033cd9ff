// Package vm holds the smoke tests of thinctl's real-kernel test rig.
//
// The rig itself is tests/vm/run.sh: it boots a throwaway qemu guest with a
// Debian kernel that has device-mapper, runs every package's `//go:build vm`
// tests inside it and reports their result (see README.md beside this file).
// The tests in this package prove that the guest offers what the other
// packages' integration tests rely on; the host tests check the shell
// functions the guest uses to count results.
package vm

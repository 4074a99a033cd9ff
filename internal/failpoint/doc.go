// Package failpoint lets tests stop, kill or fail a thinctl process at a
// named step, to prove that every step can be interrupted without losing
// data.
//
// Product code marks a step with Inject (or InjectErr where the caller can
// return an error):
//
//	failpoint.Inject(failpoint.TxAfterMessage)
//
// # Test builds only
//
// Points can be armed only in a binary built with the failpoints build
// tag (go build -tags failpoints, go test -tags failpoints); the test rigs
// build thinctl and its test binaries so. Without the tag — the release
// binary, make build — Inject and InjectErr are empty functions the
// compiler drops, Enable refuses with ErrNotCompiled, and nothing reads
// THINCTL_FAILPOINTS: no environment can make thinctl kill or stop itself.
// The point names and Parse exist in both builds, so product code and
// tests compile either way; Compiled says which build this is.
//
// With the tag, nothing happens unless the environment variable
// THINCTL_FAILPOINTS names the point when the process starts (or a test
// calls Enable). When no point is armed, Inject costs one atomic load and
// a predictable branch.
//
// # Syntax
//
// THINCTL_FAILPOINTS holds one or more entries separated by ';' or ',':
//
//	<point>=<action>[@<n>]
//
// where the action is one of
//
//	kill        SIGKILL the process (a crash: no deferred code, no cleanup)
//	panic       panic with the point's name
//	error       make InjectErr return an error wrapping ErrInjected
//	            (Inject ignores it)
//	sleep:DUR   sleep for a Go duration (e.g. sleep:2s), then go on
//	stop        SIGSTOP the process, so a test can act while it is frozen
//	            at the point (and then SIGKILL or SIGCONT it)
//
// and @n fires the action on the n-th time the point is reached only
// (default: every time). Example:
//
//	THINCTL_FAILPOINTS='thinpool/tx/after-message=kill'
//	THINCTL_FAILPOINTS='thinpool/registry/before-rename=kill@2;thinpool/mount/after-mount=sleep:1s'
//
// Points lists every point that product code marks, so a test can iterate
// over all of them; Parse rejects names that are not in it.
package failpoint

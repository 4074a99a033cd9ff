// Command thinctl manages a device-mapper thin pool and its snapshot
// devices from the command line, with overlay2 and aufs as fallback
// drivers on hosts without dm-thin-pool.
//
// Usage:
//
//	thinctl [global flags] <command> [flags] [args]
//
// Run "thinctl --help" for the command list and "thinctl <command> --help"
// for a command's flags; docs/cli.md documents every command with an
// example. The interface is a contract for scripts: exit status 0 means
// success, 1 failure and 2 a usage error; errors are one line on stderr,
// "thinctl: <what failed>: <why>", sometimes followed by a "hint:" line;
// "-o json" prints one JSON document with stable snake_case fields for
// list, info, pool status, check and version.
//
// The program is laid out so that everything runs in-process for tests:
// main only calls run, which parses the arguments (flags.go, commands.go),
// checks privileges, chooses and opens the backend through the driver
// package (backend.go: driver.Choose, driver.Open or driver.Init, and the
// driver's optional interfaces for pool status, grow, up, down, destroy,
// check, gc, mount and activate), renders text or JSON (output.go) and
// maps errors to exit codes and hints in one place (errors.go). It has no
// storage logic of its own: every backend, thinpool's included, is reached
// only through the driver package. SIGINT and SIGTERM cancel the context
// every library call gets.
package main

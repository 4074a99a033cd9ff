#!/usr/bin/env bash
# A short thinctl session a newcomer can follow: make a small thin pool,
# create a device, write to it, snapshot it, show that the snapshot is
# isolated from its parent, look at the pool, remove the snapshot and check
# that registry, pool metadata and kernel agree.
#
# Every command is printed as "+ command" before its output. The script
# stops with a non-zero status at the first step that fails.
#
# Runs as root on a kernel with device-mapper and thinctl on PATH:
#   make demo          in the throwaway VM (tests/vm/run.sh --script ...)
#   sudo make demo-native   directly on this host
# THINCTL_DEMO_ROOT picks the state directory (default: a new one in $TMPDIR).
set -euo pipefail

root=${THINCTL_DEMO_ROOT:-$(mktemp -d "${TMPDIR:-/tmp}/thinctl-demo.XXXXXX")}
export THINCTL_ROOT=$root

# show prints a command, then runs it; its output follows.
show() {
	echo "+ $*"
	"$@"
}

# capture runs a command like show and stores its stdout in $out.
capture() {
	echo "+ $*"
	out=$("$@")
	echo "$out"
}

fail() {
	echo "demo: FAILED: $*" >&2
	exit 1
}

# Whatever happens, leave no pool behind.
cleanup() {
	status=$?
	set +e
	if [ "$status" -ne 0 ]; then
		echo "demo: cleaning up after a failure (status $status)" >&2
	fi
	thinctl unmount web-snap >/dev/null 2>&1
	thinctl unmount web >/dev/null 2>&1
	thinctl pool destroy --force >/dev/null 2>&1
	[ -n "${THINCTL_DEMO_ROOT:-}" ] || rm -rf "$root"
	exit "$status"
}
trap cleanup EXIT

echo "# thinctl keeps its state in \$THINCTL_ROOT (or --root):"
echo "+ export THINCTL_ROOT=$root"
show thinctl version

echo
echo "# A pool with 2G of data space, 64M of metadata and a 512M base device (sparse files on loop devices):"
show thinctl pool init --data-size 2G --metadata-size 64M --base-size 512M
show thinctl pool status

echo
echo "# A device is a snapshot of the base device; mounting it prints where:"
show thinctl create web
capture thinctl mount web
web=$out
show bash -c "echo 'hello from web' > $web/hello.txt"
show cat "$web/hello.txt"

echo
echo "# A snapshot of web starts with web's files ..."
show thinctl create web-snap --parent web
capture thinctl mount web-snap
snap=$out
show cat "$snap/hello.txt"
[ "$(cat "$snap/hello.txt")" = "hello from web" ] || fail "the snapshot does not see its parent's file"

echo
echo "# ... and from then on the two are isolated:"
show bash -c "echo 'changed in the snapshot' > $snap/hello.txt"
show bash -c "echo 'new in the snapshot' > $snap/new.txt"
show cat "$web/hello.txt" "$snap/hello.txt"
show ls "$web" "$snap"
[ "$(cat "$web/hello.txt")" = "hello from web" ] || fail "a change in the snapshot shows in its parent"
[ ! -e "$web/new.txt" ] || fail "a file made in the snapshot shows in its parent"

echo
show thinctl list
show thinctl info web-snap
show thinctl pool status

echo
echo "# Removing a device gives its blocks back to the pool:"
show thinctl unmount web-snap
show thinctl remove web-snap
show thinctl list
show thinctl check

echo
echo "# Clean up:"
show thinctl unmount web
show thinctl pool destroy --force
echo
echo "demo: OK"

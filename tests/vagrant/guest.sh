#!/usr/bin/env bash
# tests/vagrant/guest.sh: the steps tests/vagrant/run.sh runs inside the
# Vagrant box, as root (from /thinctl, where Vagrant synced them):
#
#   guest.sh tests [REGEX [TIMEOUT]]   every /thinctl/tests/*/*.test with -test.v
#   guest.sh demo                     tests/vm/demo/demo.sh with /thinctl/bin/thinctl
#   guest.sh reboot-prepare           a pool with two mounted devices holding data
#   guest.sh reboot-check             after the reboot: the unit's pool up, mount, compare
#
# Nothing here needs a network: the binaries were built on the host.
set -euo pipefail

SYNC=/thinctl
export PATH="$SYNC/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# count_results, binary_failures: shared with the qemu rig (tests/vm/guest/lib.sh).
# shellcheck source=../vm/guest/lib.sh
. "$SYNC/lib.sh"

die() { echo "guest.sh: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root"
KVER="$(uname -r)"
OS="$(. /etc/os-release && echo "$PRETTY_NAME")"

# The reboot check's state: a pool on the root filesystem, and beside it
# what the devices held before the reboot (copies to compare byte for byte).
RB_ROOT=/var/lib/thinctl-reboot
RB_KEEP=/var/lib/thinctl-reboot-expect

# unit names the pool unit's instance for the reboot check's root.
unit() { echo "thinctl-pool@$(systemd-escape --path "$RB_ROOT").service"; }

# require_udev fails unless this is a systemd boot with systemd-udevd running:
# the suite runs in udev mode here (THINCTL_UDEV=1), unlike the busybox guest.
require_udev() {
	[ "$(cat /proc/1/comm)" = systemd ] || die "PID 1 is $(cat /proc/1/comm), not systemd"
	systemctl is-active --quiet systemd-udevd || die "systemd-udevd is not running"
	[ -e /run/udev/control ] || die "/run/udev/control is missing while systemd-udevd runs"
	[ -e /dev/mapper/control ] || modprobe dm_mod
	# overlay: the fallback driver's tests look for it in /proc/filesystems.
	modprobe -a dm_thin_pool dm_zero loop overlay
}

# boot_times prints how long this boot took and its slowest units (under
# emulation the boot is most of a run's fixed cost).
boot_times() {
	systemd-analyze time 2>/dev/null | head -1 || true
	systemd-analyze blame 2>/dev/null | head -5 | sed 's/^ */  slowest: /' || true
}

run_tests() {
	local regex="${1:-}" timeout="${2:-20m}" P=0 F=0 S=0 status=0 bin dir name rc extra log
	require_udev
	export THINCTL_UDEV=1 TMPDIR=/var/tmp/thinctl-tests
	rm -rf "$TMPDIR"
	mkdir -p "$TMPDIR"
	log="$(mktemp)"
	echo "=== thinctl in the Vagrant box: $OS, kernel $KVER, systemd-udevd $(udevadm --version) running ==="
	boot_times
	for bin in "$SYNC"/tests/*/*.test; do
		[ -e "$bin" ] || die "no test binaries under $SYNC/tests"
		dir="${bin%/*}"
		name="${bin##*/}"
		echo "=== RUN binary $name ==="
		set -- -test.v -test.timeout="$timeout"
		[ -z "$regex" ] || set -- "$@" -test.run "$regex"
		rc=0
		(cd "$dir" && "$bin" "$@") 2>&1 | tee "$log" || rc=${PIPESTATUS[0]}
		set -- $(count_results "$log")
		extra="$(binary_failures "$log" "$rc")"
		P=$((P + $1)) F=$((F + $2 + extra)) S=$((S + $3))
		if [ "$rc" -ne 0 ]; then
			status=1
			echo "=== binary $name exited $rc ==="
		fi
	done
	rm -f "$log"
	if [ "$status" -ne 0 ]; then
		echo "=== last kernel messages ==="
		dmesg | tail -40
	fi
	rm -rf "$TMPDIR"
	echo "THINCTL-VAGRANT-KERNEL=$KVER"
	echo "THINCTL-VAGRANT-COUNTS=$P $F $S"
	return "$status"
}

run_demo() {
	require_udev
	[ -x "$SYNC/bin/thinctl" ] || die "$SYNC/bin/thinctl is missing"
	cd /var/tmp
	bash "$SYNC/demo.sh"
}

# reboot_prepare makes a pool with two devices (ext4, the default, and a
# snapshot of the first), mounts both, fills them with random data and keeps
# copies on the root filesystem; the mounts stay for the reboot.
reboot_prepare() {
	require_udev
	export THINCTL_ROOT="$RB_ROOT"
	rm -rf "$RB_KEEP"
	if [ -e "$RB_ROOT" ]; then
		thinctl pool destroy --force >/dev/null 2>&1 || true
		rm -rf "$RB_ROOT"
	fi
	mkdir -p "$RB_KEEP"
	cat /proc/sys/kernel/random/boot_id >"$RB_KEEP/boot_id"
	echo "+ thinctl pool init --data-size 1G --metadata-size 16M --base-size 256M"
	thinctl pool init --data-size 1G --metadata-size 16M --base-size 256M
	# The packages' unit (packaging/systemd) brings the pool up at boot and
	# takes it down at shutdown; it runs /usr/bin/thinctl.
	install -m 0755 "$SYNC/bin/thinctl" /usr/bin/thinctl
	install -m 0644 "$SYNC/systemd/thinctl-pool@.service" /etc/systemd/system/
	systemctl daemon-reload
	echo "+ systemctl enable --now $(unit)"
	systemctl enable --now "$(unit)"
	local id mnt
	for id in web web-snap; do
		if [ "$id" = web ]; then
			echo "+ thinctl create web"
			thinctl create web
		else
			echo "+ thinctl create web-snap --parent web"
			thinctl create web-snap --parent web
		fi
		echo "+ thinctl mount $id"
		mnt="$(thinctl mount "$id")"
		echo "$mnt"
		head -c 8M /dev/urandom >"$RB_KEEP/$id.bin"
		cp "$RB_KEEP/$id.bin" "$mnt/data.bin"
		# web-snap starts as a copy of web; each gets data and a name of its own.
		echo "$id" >"$mnt/name"
		echo "$id" >"$RB_KEEP/$id.name"
		echo "$mnt" >"$RB_KEEP/$id.mount"
	done
	sync
	findmnt -rn -o TARGET,SOURCE | grep -F "$RB_ROOT" || die "the devices are not mounted"
	echo "reboot-prepare: pool $RB_ROOT with web and web-snap mounted, 8 MiB of random data each; boot $(cat "$RB_KEEP/boot_id")"
}

# reboot_check runs after the reboot: the kernel forgot the pool and the
# enabled thinctl-pool@ unit brought it back at boot (`thinctl pool up`);
# mount brings back each device, and every byte must be what was written
# before the reboot.
reboot_check() {
	require_udev
	export THINCTL_ROOT="$RB_ROOT"
	[ -f "$RB_KEEP/boot_id" ] || die "no reboot-prepare state in $RB_KEEP"
	[ "$(cat /proc/sys/kernel/random/boot_id)" != "$(cat "$RB_KEEP/boot_id")" ] || die "the guest did not reboot (same boot id)"
	local pools
	boot_times
	echo "+ systemctl status $(unit)"
	systemctl --no-pager status "$(unit)" || true
	echo "+ journalctl -b -1 -u $(unit) (the shutdown before this boot)"
	journalctl --no-pager -b -1 -u "$(unit)" 2>/dev/null | tail -8 || true
	systemctl is-active --quiet "$(unit)" || die "$(unit) is not active after the boot"
	pools="$(dmsetup ls --target thin-pool 2>/dev/null | grep -v '^No devices found' || true)"
	[ -n "$pools" ] || die "$(unit) is active but no thin pool is"
	echo "reboot-check: $(unit) brought the pool up at boot: $pools"
	echo "+ thinctl pool up (again: harmless when up)"
	thinctl pool up
	echo "+ thinctl pool status"
	thinctl pool status
	local id mnt bad=0
	for id in web web-snap; do
		echo "+ thinctl mount $id"
		mnt="$(thinctl mount "$id")"
		echo "$mnt"
		if cmp "$RB_KEEP/$id.bin" "$mnt/data.bin" && cmp "$RB_KEEP/$id.name" "$mnt/name"; then
			echo "reboot-check: $id: 8 MiB of data and its name file identical after the reboot"
		else
			echo "reboot-check: $id: data differs after the reboot" >&2
			bad=1
		fi
		echo "+ thinctl unmount $id"
		thinctl unmount "$id"
	done
	echo "+ thinctl check"
	thinctl check || bad=1
	systemctl disable "$(unit)" >/dev/null 2>&1 || true
	echo "+ thinctl pool destroy --force"
	thinctl pool destroy --force
	rm -rf "$RB_KEEP" "$RB_ROOT"
	[ "$bad" -eq 0 ] || die "the devices did not come back as they were"
	echo "reboot-check: pool and devices came back after the reboot with their data (kernel $KVER)"
}

case "${1:-}" in
tests) shift; run_tests "$@" ;;
demo) run_demo ;;
reboot-prepare) reboot_prepare ;;
reboot-check) reboot_check ;;
*) die "usage: guest.sh tests [REGEX [TIMEOUT]] | demo | reboot-prepare | reboot-check" ;;
esac

#!/usr/bin/env bash
# tests/vagrant/run.sh: thinctl in a throwaway Vagrant VM (`make test-vagrant`).
#
# Installs Vagrant, vagrant-libvirt and libvirt (Debian's packages), builds or
# reuses the Debian box (box.sh), starts virtlogd and libvirtd inside a network
# namespace of its own, boots the box with `vagrant up --provider libvirt`,
# runs the integration tests (built here with `go test -c -tags vm`) and the
# demo inside it as root with systemd-udevd, reboots it with a pool holding
# mounted devices and checks they come back, and always ends with `vagrant
# destroy -f`, the daemons stopped and the namespace removed. See README.md.
set -euo pipefail
# The whole script is one block that bash reads before it runs any of it: an
# edit of this file during a run cannot change what the run does.
{

usage() {
	cat <<'EOF'
usage: tests/vagrant/run.sh [flags]

  --pkg PKG        integration test package to run in the box (repeatable;
                   default: ./cmd/thinctl)
  --run REGEX      passed to the test binaries as -test.run
  --test-timeout DUR  -test.timeout of each test binary (default 15m)
  --no-demo        skip the demo
  --no-reboot      skip the reboot check
  --keep           keep the scratch directory (console log, vagrant logs)
  -h, --help       this text
EOF
}

# die records why the run stopped (the summary line names it) and exits.
die() {
	echo "vagrant/run.sh: $*" >&2
	WHY="$*"
	exit 2
}
log() { echo "vagrant/run.sh: $*" >&2; }

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"

PKGS=()
RUN_REGEX=""
TEST_TIMEOUT=15m
DEMO=1
REBOOT=1
KEEP=0
while [ $# -gt 0 ]; do
	case "$1" in
	--pkg) PKGS+=("${2:?--pkg needs a package}"); shift 2 ;;
	--pkg=*) PKGS+=("${1#*=}"); shift ;;
	--run) RUN_REGEX="${2?--run needs a regex}"; shift 2 ;;
	--run=*) RUN_REGEX="${1#*=}"; shift ;;
	--test-timeout) TEST_TIMEOUT="${2:?--test-timeout needs a duration}"; shift 2 ;;
	--test-timeout=*) TEST_TIMEOUT="${1#*=}"; shift ;;
	--no-demo) DEMO=0; shift ;;
	--no-reboot) REBOOT=0; shift ;;
	--keep) KEEP=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; die "unknown argument: $1" ;;
	esac
done
# The default fits the budget (tests/vagrant/README.md, "Budget"): cmd/thinctl's
# tests drive the whole stack through the CLI; the qemu rig runs every package.
[ ${#PKGS[@]} -gt 0 ] || PKGS=(./cmd/thinctl)
[[ "$TEST_TIMEOUT" =~ ^[0-9]+[hms]$ ]] || die "--test-timeout wants a duration like 15m, not $TEST_TIMEOUT"
[ "$(id -u)" -eq 0 ] || die "run as root: it installs packages, starts libvirtd and creates a network namespace"

case ":$PATH:" in *:/usr/local/go/bin:*) ;; *) [ -d /usr/local/go/bin ] && PATH="$PATH:/usr/local/go/bin" ;; esac
case ":$PATH:" in *:/usr/sbin:*) ;; *) PATH="$PATH:/usr/sbin:/sbin" ;; esac
export PATH

T_START=$SECONDS
BOX_SUITE=""
TIMINGS=()
# count_results: shared with the qemu rig.
# shellcheck source=../vm/guest/lib.sh
. "$ROOT/tests/vm/guest/lib.sh"
# phase NAME: print a timing line for the phase that just ended.
T_PHASE=$SECONDS
phase() {
	TIMINGS+=("$1 $((SECONDS - T_PHASE))s")
	log "$1 took $((SECONDS - T_PHASE))s"
	T_PHASE=$SECONDS
}

WHY=""
SUMMARY_DONE=0
STEPS=()
COUNTS="0 0 0"
KVER=""
WORK=""
NS="thinctl-vagrant-$$"
POOL="thinctl-vagrant-$$"
DAEMON_PIDS=()
VAGRANT_UP=0

# summary prints the line `make test` greps: "vagrant (...): N tests passed,
# M failed, K skipped; <steps> (total Ns)". A run that stopped early counts
# one failure and says where.
summary() {
	local p f s line
	read -r p f s <<<"$COUNTS"
	[ -z "$WHY" ] || f=$((f + 1))
	echo
	echo "=== vagrant summary ==="
	echo "timings: ${TIMINGS[*]} (load average now: $(cut -d' ' -f1-3 /proc/loadavg))"
	line="vagrant (Debian ${BOX_SUITE:-?} box, kernel ${KVER:-?}, ${PKGS[*]}): $p tests passed, $f failed, $s skipped"
	[ ${#STEPS[@]} -eq 0 ] || line="$line; $(printf '%s, ' "${STEPS[@]}" | sed 's/, $//')"
	[ -z "$WHY" ] || line="$line; STOPPED: $WHY"
	echo "$line (total $((SECONDS - T_START))s)"
	SUMMARY_DONE=1
}

in_ns() { ip netns exec "$NS" "$@"; }
# indent: Vagrant's output, indented, without its progress bars.
# Each line carries the seconds since the run started.
indent() {
	local l
	stdbuf -oL tr '\r' '\n' | grep --line-buffered -v -E 'Progress: [0-9]+%|^.?.?.?$' |
		while IFS= read -r l; do printf '  %4ds %s\n' "$((SECONDS - T_START))" "$l"; done
}
virsh_q() { in_ns virsh -q "$@"; }

# cleanup runs on every exit: the VM, then what libvirt keeps (networks,
# the pool and its volumes), the daemons this script started (by pid),
# whatever still runs in the namespace (libvirt's dnsmasq), the namespace.
cleanup() {
	local rc=$? t0=$SECONDS pid n v
	set +e
	trap - EXIT INT TERM
	if [ "$VAGRANT_UP" = 1 ]; then
		log "vagrant destroy -f"
		in_ns vagrant destroy -f 2>&1 | indent
	fi
	if [ ${#DAEMON_PIDS[@]} -gt 0 ]; then
		for n in $(virsh_q list --all --name 2>/dev/null); do
			case "$n" in *thinctl*) virsh_q destroy "$n"; virsh_q undefine "$n" --nvram ;; esac
		done
		for n in $(virsh_q net-list --all --name 2>/dev/null); do
			[ "$n" = default ] && continue # the package's, never started here
			virsh_q net-destroy "$n" >/dev/null 2>&1
			virsh_q net-undefine "$n" >/dev/null
		done
		for v in $(virsh_q vol-list "$POOL" 2>/dev/null | awk '{print $1}'); do
			virsh_q vol-delete --pool "$POOL" "$v" >/dev/null
		done
		virsh_q pool-destroy "$POOL" >/dev/null 2>&1
		virsh_q pool-undefine "$POOL" >/dev/null 2>&1
		for pid in "${DAEMON_PIDS[@]}"; do kill "$pid" 2>/dev/null; done
		for pid in "${DAEMON_PIDS[@]}"; do
			for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
			kill -9 "$pid" 2>/dev/null
		done
	fi
	if [ -e "/run/netns/$NS" ]; then
		for pid in $(ip netns pids "$NS"); do
			log "stopping $(cat /proc/"$pid"/comm 2>/dev/null) (pid $pid) left in $NS"
			kill "$pid" 2>/dev/null
		done
		sleep 0.5
		for pid in $(ip netns pids "$NS"); do kill -9 "$pid" 2>/dev/null; done
		ip netns del "$NS"
	fi
	[ "$SUMMARY_DONE" = 1 ] || summary
	if [ -z "$WORK" ]; then
		:
	elif [ "$KEEP" = 1 ]; then
		rm -rf "$WORK/vagrant.d" "$WORK/pool"
		log "kept $WORK"
	else
		rm -rf "$WORK"
	fi
	log "cleanup took $((SECONDS - t0))s"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# One Vagrant VM at a time on this machine, whoever starts it.
mkdir -p /run/lock
exec 8>/run/lock/thinctl-vagrant.lock
flock -n 8 || { log "another make test-vagrant runs; waiting for it"; flock 8; }

# ---------------------------------------------------------------------------
# 1. Host packages.

HOST_PKGS=(vagrant vagrant-libvirt libvirt-daemon-system libvirt-clients qemu-system-x86 qemu-utils
	debootstrap dnsmasq-base fdisk e2fsprogs rsync iproute2 iptables openssh-client)
missing=()
for p in "${HOST_PKGS[@]}"; do
	[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	command -v apt-get >/dev/null || die "missing packages ${missing[*]} and no apt-get to install them"
	log "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
phase packages

# ---------------------------------------------------------------------------
# 2. The box (cached) and what goes into it.

BOX="$("$HERE/box.sh" | tail -1)"
[ -f "$BOX" ] || die "box.sh gave no box"
BOX_NAME="$(basename "$BOX" .box)"
BOX_INFO="$(tar -xOf "$BOX" info)" # "Debian bookworm, kernel 6.1.0-NN-amd64"
BOX_SUITE="$(echo "$BOX_INFO" | sed -n 's/^Debian \([^,]*\),.*/\1/p')"
KVER="${BOX_INFO##*kernel }"
phase box

WORK="$(mktemp -d /var/tmp/thinctl-vagrant.XXXXXX)"
# libvirt runs qemu as libvirt-qemu: it must reach the kernel, the initramfs
# and the pool's volumes below WORK.
chmod 0755 "$WORK"
SYNC="$WORK/sync"
mkdir -p "$SYNC/tests" "$SYNC/bin"
log "building test binaries: ${PKGS[*]}"
dirs=()
for pkg in "${PKGS[@]}"; do
	mapfile -t -O "${#dirs[@]}" dirs < <(cd "$ROOT" && go list -tags vm -f '{{.Dir}}' "$pkg") || die "go list $pkg failed"
done
for dir in "${dirs[@]}"; do
	rel="${dir#"$ROOT"}"
	rel="${rel#/}"
	name="$(echo "${rel:-root}" | tr '/' '_')"
	mkdir -p "$SYNC/tests/$name"
	(cd "$dir" && CGO_ENABLED=0 go test -c -tags vm -ldflags='-s -w' -o "$SYNC/tests/$name/$name.test" .) || die "go test -c ./$rel failed"
	[ -f "$SYNC/tests/$name/$name.test" ] || { rmdir "$SYNC/tests/$name"; continue; }
	[ -d "$dir/testdata" ] && cp -r "$dir/testdata" "$SYNC/tests/$name/"
done
(cd "$ROOT" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$(git describe --always --dirty 2>/dev/null || echo unknown)" \
	-o "$SYNC/bin/thinctl" ./cmd/thinctl)
cp "$HERE/guest.sh" "$SYNC/guest.sh"
cp "$ROOT/tests/vm/guest/lib.sh" "$SYNC/lib.sh"
cp "$ROOT/tests/vm/demo/demo.sh" "$SYNC/demo.sh"
# The reboot check brings the pool up at boot with the packages' unit.
mkdir -p "$SYNC/systemd"
cp "$ROOT/packaging/systemd/thinctl-pool@.service" "$SYNC/systemd/"
# cmd/thinctl's docs test reads ../../docs/cli.md from its package directory.
mkdir -p "$SYNC/docs"
cp "$ROOT/docs/cli.md" "$SYNC/docs/cli.md"
chmod 0755 "$SYNC/guest.sh"
phase "go test -c"

# ---------------------------------------------------------------------------
# 3. The network namespace, the daemons, the storage pool.

CONSOLE="$WORK/console.log"
export VAGRANT_HOME="$WORK/vagrant.d" VAGRANT_DOTFILE_PATH="$WORK/dot-vagrant" VAGRANT_CWD="$ROOT"
export VAGRANT_CHECKPOINT_DISABLE=1 VAGRANT_BOX_UPDATE_CHECK_DISABLE=1 VAGRANT_DEFAULT_PROVIDER=libvirt
export THINCTL_VAGRANT_BOX="$BOX_NAME" THINCTL_VAGRANT_SYNC="$SYNC" THINCTL_VAGRANT_POOL="$POOL"
export THINCTL_VAGRANT_CONSOLE="$CONSOLE"
export LIBVIRT_DEFAULT_URI=qemu:///system


# libvirtd's socket is a path, seen from every namespace: one that answers
# belongs to a libvirtd this run did not start (another user's, or one a
# killed run left behind).
if timeout 10 virsh -q -c qemu:///system version >/dev/null 2>&1; then
	die "a libvirtd already answers on qemu:///system: test-vagrant starts its own inside a network namespace; stop that one first (tests/vagrant/README.md, after a killed run)"
fi
ip netns add "$NS"
ip -n "$NS" link set lo up
in_ns virtlogd -d -p "$WORK/virtlogd.pid"
DAEMON_PIDS+=("$(cat "$WORK/virtlogd.pid")")
in_ns libvirtd -d -p "$WORK/libvirtd.pid"
for _ in $(seq 100); do [ -s "$WORK/libvirtd.pid" ] && break; sleep 0.1; done
DAEMON_PIDS+=("$(cat "$WORK/libvirtd.pid")")
for _ in $(seq 100); do virsh_q version >/dev/null 2>&1 && break; sleep 0.2; done
virsh_q version >/dev/null || die "libvirtd did not answer"
mkdir -p "$WORK/pool"
virsh_q pool-define-as "$POOL" dir --target "$WORK/pool" >/dev/null
virsh_q pool-start "$POOL" >/dev/null
in_ns vagrant box add --name "$BOX_NAME" "$BOX" >/dev/null
phase "libvirtd, pool, box add"

# ---------------------------------------------------------------------------
# 4. Up, tests, demo, reboot.

# check_namespace: libvirt's bridge and dnsmasq exist only in the namespace.
check_namespace() {
	local br pid nsino
	br="$(ip -n "$NS" -o link show type bridge | awk -F': ' '{print $2}' | head -1)"
	[ -n "$br" ] || die "no bridge in namespace $NS after vagrant up"
	if ip link show "$br" >/dev/null 2>&1; then
		die "bridge $br is visible in the host's network namespace"
	fi
	nsino="$(stat -L -c %i "/run/netns/$NS")"
	for pid in $(ip netns pids "$NS"); do
		[ "$(cat /proc/"$pid"/comm)" = dnsmasq ] || continue
		[ "$(stat -L -c %i /proc/"$pid"/ns/net)" = "$nsino" ] || die "dnsmasq $pid is not in $NS"
		echo "network: bridge $br ($(ip -n "$NS" -4 -o addr show dev "$br" | awk '{print $4}')) and dnsmasq (pid $pid) only in namespace $NS; host links: $(ip -o link show | awk -F': ' '{printf "%s ", $2}')"
		return 0
	done
	die "no dnsmasq in namespace $NS"
}

FAILED=0

log "vagrant up --provider libvirt ($BOX_INFO)"
VAGRANT_UP=1
in_ns vagrant up --provider libvirt 2>&1 | indent
[ "${PIPESTATUS[0]}" -eq 0 ] || die "vagrant up failed (console: $CONSOLE, --keep keeps it)"
phase "vagrant up"
check_namespace

set +e
in_ns vagrant ssh -c "sudo /thinctl/guest.sh tests '$RUN_REGEX' $TEST_TIMEOUT" 2>&1 | tee "$WORK/tests.log"
rc=${PIPESTATUS[0]}
set -e
tr -d '\r' <"$WORK/tests.log" >"$WORK/tests.clean"
COUNTS="$(grep -a '^THINCTL-VAGRANT-COUNTS=' "$WORK/tests.clean" | tail -1 | cut -d= -f2)"
if [ -z "$COUNTS" ]; then
	# The guest never printed its counts: count what the transcript shows.
	read -r p f s <<<"$(count_results "$WORK/tests.clean")"
	COUNTS="$p $((f + 1)) $s"
fi
[ "$rc" -eq 0 ] || FAILED=1
phase tests

if [ "$DEMO" = 1 ]; then
	if in_ns vagrant ssh -c "sudo /thinctl/guest.sh demo" 2>&1; then
		STEPS+=("demo ok")
	else
		STEPS+=("demo FAILED")
		FAILED=1
	fi
	phase demo
fi

if [ "$REBOOT" = 1 ]; then
	ok=0
	if in_ns vagrant ssh -c "sudo /thinctl/guest.sh reboot-prepare" 2>&1; then
		# libvirt truncates the console file when the guest starts again.
		cp "$CONSOLE" "$WORK/console.boot1.log" 2>/dev/null || true
		log "vagrant reload (a real reboot of the guest with the devices mounted)"
		if in_ns vagrant reload 2>&1 | indent && [ "${PIPESTATUS[0]}" -eq 0 ]; then
			in_ns vagrant ssh -c "sudo /thinctl/guest.sh reboot-check" 2>&1 && ok=1
		fi
	fi
	if [ "$ok" = 1 ]; then
		STEPS+=("reboot ok")
	else
		STEPS+=("reboot FAILED")
		FAILED=1
	fi
	phase reboot
fi

log "vagrant destroy -f"
in_ns vagrant destroy -f 2>&1 | indent
VAGRANT_UP=0
phase "vagrant destroy"

summary
read -r _ F _ <<<"$COUNTS"
[ "$FAILED" -eq 0 ] && [ "$F" -eq 0 ]
exit
}

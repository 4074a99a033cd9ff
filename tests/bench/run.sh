#!/usr/bin/env bash
# tests/bench/run.sh: run thinctl's benchmarks and write the report.
#
#   tests/bench/run.sh                 in the throwaway VM, two boots: every measurement without
#                                      udev, then measurement 1 again with udev (make bench); then
#                                      the peer stages (containerd_devmapper, csi_lvm, cri: a boot each, no udev)
#   tests/bench/run.sh --native        on this host: root, device-mapper (make bench-native)
#   tests/bench/run.sh --quick         small counts; report goes to $TMPDIR, not docs/
#   tests/bench/run.sh --udev          one boot, with systemd-udevd and the dm rules running
#   tests/bench/run.sh --no-udev       one boot, without udev
#   tests/bench/run.sh --peer-only STAGE  only that peer stage (containerd_devmapper, csi_lvm, cri): its
#                                      BENCH and TARGET lines; docs/ is not written
#   tests/bench/run.sh --report LOG    only rebuild docs/ from the output of earlier runs (repeat
#                                      --report to merge runs that measured different sections;
#                                      --peer LOG adds a peer stage's output)
#
# Anything after `--` is passed to `thinctl-bench run` (e.g. -- -only opcost -n 20).
# Each boot's output is kept in ${TMPDIR:-/tmp}/thinctl-bench-<time>[-udev].log. The
# last lines are the BENCH figures, then every target with its value, goal and
# verdict. Full runs write docs/BENCHMARKS.md and the plots and raw results in
# docs/bench/ (gnuplot-nox is installed when missing).
set -euo pipefail

# Everything is in main so that bash has read the whole file before it runs.
main() {
	ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
	export PATH="$PATH:/usr/local/go/bin"
	MODE=vm QUICK=0 TIMEOUT=50m BOOTS=(noudev udev) UDEV_DEVICES=40
	REPORT_LOGS=()
	PEER_LOGS=()
	RUN_ARGS=()
	PEER_ONLY=""

	usage() { sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
	die() { echo "bench: $*" >&2; exit 1; }

	while [ $# -gt 0 ]; do
		case "$1" in
		--native) MODE=native; shift ;;
		--vm) MODE=vm; shift ;;
		--quick) QUICK=1; shift ;;
		--udev) BOOTS=(udev); shift ;;
		--no-udev) BOOTS=(noudev); shift ;;
		--report) REPORT_LOGS+=("${2:?--report needs the log of a run}"); shift 2 ;;
		--peer) PEER_LOGS+=("${2:?--peer needs the log of a peer stage}"); shift 2 ;;
		--peer-only) PEER_ONLY="${2:?--peer-only needs a stage}"; shift 2 ;;
		--timeout) TIMEOUT="${2:?--timeout needs a duration}"; shift 2 ;;
		-h | --help) usage ;;
		--) shift; RUN_ARGS+=("$@"); break ;;
		*) echo "bench: unknown argument $1" >&2; usage 2 ;;
		esac
	done
	[ "$QUICK" = 1 ] && RUN_ARGS=(-quick "${RUN_ARGS[@]}") UDEV_DEVICES=10
	RUN_ARGS=(-rev "$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)" "${RUN_ARGS[@]}")

	cd "$ROOT"
	BIN="$ROOT/bin/thinctl-bench"
	echo "=== bench: building $BIN and bin/thinctl (static) ==="
	mkdir -p bin
	CGO_ENABLED=0 go build -trimpath -o "$BIN" ./tests/bench
	# Measurement 6 runs one thinctl process per action.
	CGO_ENABLED=0 go build -trimpath -o "$ROOT/bin/thinctl" ./cmd/thinctl
	# ... against the process floor: the same kernel work in the least a Go process can be.
	CGO_ENABLED=0 go build -trimpath -o "$ROOT/bin/thinctl-procfloor" ./tests/bench/procfloor

	# Quick runs and runs restricted with -only are for checking, not for docs/.
	OUT_DOCS="$ROOT/docs/BENCHMARKS.md" OUT_PLOTS="$ROOT/docs/bench"
	partial=0
	[ "$QUICK" = 1 ] && partial=1
	for a in "${RUN_ARGS[@]}"; do case "$a" in -only | -only=* | -n | -n=* | -reps | -reps=*) partial=1 ;; esac; done
	if [ "$partial" = 1 ]; then
		scratch="${TMPDIR:-/tmp}/thinctl-bench-report"
		OUT_DOCS="$scratch/BENCHMARKS.md" OUT_PLOTS="$scratch/bench"
	fi

	# report LOG...: docs/ from the runs' logs and the peer stages' logs
	# (PEER_LOGS); the figures and the target summary are printed last.
	report() {
		local ins=() log
		for log in "$@"; do ins+=(-in "$log"); done
		for log in "${PEER_LOGS[@]}"; do ins+=(-peer "$log"); done
		if ! command -v gnuplot >/dev/null 2>&1; then
			echo "=== bench: installing gnuplot-nox for the plots ==="
			if ! { apt-get install -y --no-install-recommends gnuplot-nox >/dev/null 2>&1 ||
				{ apt-get update >/dev/null 2>&1 && apt-get install -y --no-install-recommends gnuplot-nox >/dev/null 2>&1; }; }; then
				echo "bench: could not install gnuplot-nox; the report is written without new plots" >&2
			fi
		fi
		mkdir -p "$OUT_PLOTS"
		local figures
		figures="$("$BIN" report "${ins[@]}" -out "$OUT_DOCS" -plots "$OUT_PLOTS")" || return 1
		echo "=== bench: wrote $OUT_DOCS and $OUT_PLOTS/ ==="
		echo "=== bench: figures ==="
		echo "$figures"
	}

	if [ ${#REPORT_LOGS[@]} -gt 0 ]; then
		report "${REPORT_LOGS[@]}"
		exit 0
	fi

	STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
	if [ -n "$PEER_ONLY" ]; then
		case "$PEER_ONLY" in containerd_devmapper | csi_lvm | cri) ;; *) die "--peer-only: no peer stage $PEER_ONLY (containerd_devmapper, csi_lvm, cri)" ;; esac
		plog="${TMPDIR:-/tmp}/thinctl-bench-$STAMP-$PEER_ONLY.log"
		echo "=== bench: peer stage $PEER_ONLY only, output kept in $plog ==="
		rc=0
		"$PEER_ONLY" "$plog" || rc=$?
		echo "=== bench: figures of $PEER_ONLY (a partial run: docs/ not written) ==="
		"$BIN" targets "$plog" || rc=1
		exit "$rc"
	fi
	LOGS=()
	rc=0
	if [ "$MODE" = vm ]; then
		for boot in "${BOOTS[@]}"; do
			run_vm "$boot" || rc=$?
		done
	else
		run_native || rc=$?
	fi
	[ ${#LOGS[@]} -gt 0 ] || die "no run printed results (exit $rc)"

	# Peer stages: other modules' benchmarks (containerd's devmapper
	# snapshotter, ...). Each is a function below, listed in PEER_STAGES,
	# that is given a log file to write; its "BENCH name=value" lines join
	# the report and the target summary. A stage that fails is reported and
	# the others still run.
	PEER_STAGES=(containerd_devmapper csi_lvm cri)
	if [ "$QUICK" = 0 ] && [ "$partial" = 0 ]; then
		for stage in "${PEER_STAGES[@]}"; do
			plog="${TMPDIR:-/tmp}/thinctl-bench-$STAMP-$stage.log"
			echo "=== bench: peer stage $stage, output kept in $plog ==="
			if "$stage" "$plog"; then PEER_LOGS+=("$plog"); else echo "bench: peer stage $stage failed; see $plog" >&2; rc=1; fi
		done
	fi

	echo "=== bench: measured in $(((SECONDS + 30) / 60)) min (building, every guest boot, peer stages) ==="
	report "${LOGS[@]}" || rc=1
	exit "$rc"
}

# containerd_devmapper LOG: thinctl-snapshotter against containerd's devmapper
# snapshotter in one containerd (docs/containerd.md): a test of the containerd
# module (its own go.mod), run by name in a guest boot of its own, without
# udev like measurement 1's figures (docs/containerd.md gives the figures with
# udev too); on a native host, the test binary runs here when containerd, ctr
# and blkdiscard are installed.
containerd_devmapper() {
	local log="$1" run=(-test.run '^TestBenchVsContainerdDevmapper$' -test.v -test.timeout 30m) bin rc
	if [ "$MODE" = vm ]; then
		set +e
		tests/vm/run.sh --no-udev --pkg ./containerd/cmd/thinctl-snapshotter --run "${run[1]}" --timeout 40m 2>&1 | tee "$log"
		rc=${PIPESTATUS[0]}
		set -e
		return "$rc"
	fi
	if ! command -v containerd >/dev/null || ! command -v ctr >/dev/null || ! command -v blkdiscard >/dev/null; then
		echo "bench: containerd, ctr or blkdiscard not installed: no comparison with containerd's devmapper snapshotter" | tee "$log"
		return 0
	fi
	bin="$ROOT/bin/thinctl-ctrd-bench.test"
	(cd containerd && CGO_ENABLED=0 go test -c -trimpath -tags vm -o "$bin" ./cmd/thinctl-snapshotter)
	set +e
	"$bin" "${run[@]}" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	set -e
	return "$rc"
}

# csi_lvm LOG: thinctl-csi against lvm2's commands (docs/csi.md): a test of
# the csi module (its own go.mod), run by name in a guest boot of its own
# without udev, with lvm2 from tests/bench/testdata/vm-debs and the
# dm-snapshot module `lvcreate -s` looks for; on a native host, the test
# binary runs here when lvm2 is installed.
csi_lvm() {
	local log="$1" run=(-test.run '^TestBenchCSIVsLVM$' -test.v -test.timeout 20m) bin rc
	if [ "$MODE" = vm ]; then
		set +e
		tests/vm/run.sh --no-udev --pkg ./csi/cmd/thinctl-csi --run "${run[1]}" --debs "$ROOT/tests/bench/testdata/vm-debs" \
			--module dm-snapshot --timeout 30m 2>&1 | tee "$log"
		rc=${PIPESTATUS[0]}
		set -e
		return "$rc"
	fi
	if ! command -v lvm >/dev/null || ! command -v mkfs.ext4 >/dev/null; then
		echo "bench: lvm2 or mkfs.ext4 not installed: no comparison of thinctl-csi with lvm2" | tee "$log"
		return 0
	fi
	bin="$ROOT/bin/thinctl-csi-bench.test"
	(cd csi && CGO_ENABLED=0 go test -c -trimpath -tags vm -o "$bin" ./cmd/thinctl-csi)
	set +e
	"$bin" "${run[@]}" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	set -e
	return "$rc"
}

# cri LOG: pods through containerd's CRI plugin on thinctl-snapshotter,
# containerd's devmapper snapshotter and overlayfs, and 50 pods twice on a
# pool with 10% headroom (docs/containerd.md, "Kubernetes node"): a test of
# the containerd module run by name in a guest boot of its own without udev,
# with runc and Debian's docker-registry from the module's testdata/vm-debs.
# There is no native variant: it needs a node's containerd, runc and
# registry set up the way the guest has them.
cri() {
	local log="$1" rc
	if [ "$MODE" != vm ]; then
		echo "bench: the CRI comparison runs only in the VM (tests/bench/run.sh without --native)" | tee "$log"
		return 0
	fi
	set +e
	tests/vm/run.sh --no-udev --pkg ./containerd/cmd/thinctl-snapshotter --run '^TestBenchCRIPodsOnThreeSnapshotters$' \
		--test-timeout 100m --timeout 110m --memory 3072 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	set -e
	return "$rc"
}

# guest_script FILE ARGS...: the script the VM guest runs: thinctl-bench run
# with ARGS.
guest_script() {
	local out="$1"
	shift
	{
		echo '#!/bin/bash'
		echo '# Generated by tests/bench/run.sh: runs in the VM guest.'
		printf 'exec thinctl-bench run -emulation %q' "qemu TCG (software emulation) on $(nproc)-core host, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
		[ $# -eq 0 ] || printf ' %q' "$@"
		echo
	} >"$out"
}

# run_vm MODE: one guest boot (noudev: every measurement; udev: measurement
# 1 with udev running, unless the caller restricted the run with -only);
# its log joins LOGS when it printed results.
run_vm() {
	local mode="$1" log args=("${RUN_ARGS[@]}") script rc
	log="${TMPDIR:-/tmp}/thinctl-bench-$STAMP.log"
	if [ "$mode" = udev ]; then
		log="${TMPDIR:-/tmp}/thinctl-bench-$STAMP-udev.log"
		# In make bench's second boot, measurement 1 only, with fewer
		# devices: udev's rules make every step slower.
		[ ${#BOOTS[@]} -gt 1 ] && args+=(-only opcost -n "$UDEV_DEVICES" -discard-reps 0)
	fi
	script="$(mktemp "${TMPDIR:-/tmp}/thinctl-bench-guest.XXXXXX.sh")"
	guest_script "$script" "${args[@]}"
	echo "=== bench: VM boot ($mode), output kept in $log ==="
	set +e
	tests/vm/run.sh --script "$script" --extra-bin "$BIN" --extra-bin "$ROOT/bin/thinctl" --extra-bin "$ROOT/bin/thinctl-procfloor" \
		--debs "$ROOT/tests/bench/testdata/vm-debs" --module dm-snapshot --timeout "$TIMEOUT" "$([ "$mode" = udev ] && echo --udev || echo --no-udev)" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	set -e
	rm -f "$script"
	check_log "$log" "$rc"
}

# run_native: one run on this host.
run_native() {
	local log="${TMPDIR:-/tmp}/thinctl-bench-$STAMP.log" rc
	[ "$(id -u)" -eq 0 ] || die "--native needs root (loop, device-mapper and overlay mounts)"
	[ -e /dev/mapper/control ] || modprobe dm_mod 2>/dev/null || true
	modprobe -a dm_thin_pool loop overlay 2>/dev/null || true
	command -v dmsetup >/dev/null || die "--native needs dmsetup (the comparison path)"
	echo "=== bench: native run, output kept in $log ==="
	set +e
	PATH="$ROOT/bin:$PATH" "$BIN" run "${RUN_ARGS[@]}" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	set -e
	check_log "$log" "$rc"
}

# check_log LOG RC: add LOG to LOGS when it holds results; say when the run
# stopped early. Returns RC.
check_log() {
	local log="$1" rc="$2"
	if ! grep -aq '^BENCHJSON-END' "$log"; then
		echo "bench: $log: the run printed no results (exit $rc)" >&2
		return $((rc ? rc : 1))
	fi
	LOGS+=("$log")
	[ "$rc" = 0 ] || echo "bench: $log: the run did not finish (exit $rc): the report shows the sections it completed" >&2
	return "$rc"
}

main "$@"

#!/usr/bin/env bash
# tests/reliability/fuzz.sh [DURATION] [PACKAGE...]: run every Go fuzz target
# of the repository (or of the given packages) for DURATION each (default 30s),
# one after the other, and print a summary. Exit 1 when a target failed.
#
# FUZZ_TARGETS (an extended regexp, default every target) picks targets by
# name; FUZZ_MINIMIZE (a duration) bounds the minimizing of each new
# interesting input, which counts against DURATION.
#
# A failing input is written by `go test` to <package>/testdata/fuzz/<Target>/;
# commit it: plain `go test` replays it from then on, so every crash found
# becomes a unit test.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
case ":$PATH:" in *:/usr/local/go/bin:*) ;; *) [ -d /usr/local/go/bin ] && PATH="$PATH:/usr/local/go/bin" ;; esac
export CGO_ENABLED=0

dur="${1:-30s}"
shift || true
if [ $# -gt 0 ]; then pkgs=("$@"); else mapfile -t pkgs < <(go list ./...); fi

# fuzz_one runs one target. Go's fuzzing coordinator sometimes stops a
# run with "context deadline exceeded" without any failing input (seen
# with Go 1.26 on loaded machines); such a run is repeated once, and only a
# failure with an input (or a second such stop) counts.
fuzz_one() {
	local out rc
	out="$(mktemp)"
	for attempt in 1 2; do
		go test -run '^$' -fuzz "^${2}\$" -fuzztime "$dur" ${FUZZ_MINIMIZE:+-fuzzminimizetime "$FUZZ_MINIMIZE"} "$1" 2>&1 | tee "$out"
		rc=${PIPESTATUS[0]}
		if [ "$rc" -eq 0 ] || grep -q 'Failing input written to' "$out" ||
			! grep -q 'context deadline exceeded' "$out" || [ "$attempt" = 2 ]; then
			break
		fi
		echo "fuzz.sh: $2 stopped with 'context deadline exceeded' and no failing input; running it again"
	done
	rm -f "$out"
	return "$rc"
}

ran=0 failed=()
start=$SECONDS
for pkg in "${pkgs[@]}"; do
	targets="$(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' | grep -E "${FUZZ_TARGETS:-.}" || true)"
	for f in $targets; do
		echo "=== fuzz $pkg $f ($dur)"
		ran=$((ran + 1))
		if ! fuzz_one "$pkg" "$f"; then
			failed+=("$pkg $f")
		fi
	done
done
echo "fuzz.sh: $ran targets, ${#failed[@]} failed, $((SECONDS - start))s"
for f in "${failed[@]}"; do echo "FAILED: $f (see its testdata/fuzz/ for the input)"; done
[ ${#failed[@]} -eq 0 ]

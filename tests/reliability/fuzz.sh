#!/usr/bin/env bash
# tests/reliability/fuzz.sh [DURATION] [PACKAGE...]: run every Go fuzz target
# of the repository (or of the given packages) for DURATION each (default 30s),
# one after the other, and print a summary. Exit 1 when a target failed.
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

ran=0 failed=()
start=$SECONDS
for pkg in "${pkgs[@]}"; do
	targets="$(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true)"
	for f in $targets; do
		echo "=== fuzz $pkg $f ($dur)"
		ran=$((ran + 1))
		if ! go test -run '^$' -fuzz "^${f}\$" -fuzztime "$dur" "$pkg"; then
			failed+=("$pkg $f")
		fi
	done
done
echo "fuzz.sh: $ran targets, ${#failed[@]} failed, $((SECONDS - start))s"
for f in "${failed[@]}"; do echo "FAILED: $f (see its testdata/fuzz/ for the input)"; done
[ ${#failed[@]} -eq 0 ]

#!/usr/bin/env bash
# Builds thinctl-v1gen (main.go here) against the thinpool library of the
# last release with the version 1 registry (commit a95f7a2), with the
# failpoints tag, into $1. TestALiveVersion1RootIsMigratedByOpen runs it in
# the VM: tests/vm/run.sh --pkg ./thinpool --run Version1 --extra-bin "$1"
set -euo pipefail
out=$(realpath -m "${1:?usage: build.sh OUTPUT}")
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
top=$(git -C "$here/../../.." rev-parse --show-toplevel)
git -C "$top" archive a95f7a2 | tar -x -C "$tmp"
mkdir -p "$tmp/cmd/thinctl-v1gen"
cp "$here/main.go" "$tmp/cmd/thinctl-v1gen/"
(cd "$tmp" && CGO_ENABLED=0 go build -tags failpoints -o "$out" ./cmd/thinctl-v1gen)

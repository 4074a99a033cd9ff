#!/usr/bin/env bash
# packaging/dist.sh OUTDIR: the source tarball thinctl-<rpm version>.tar.gz a
# RHEL-style host builds the RPM from (`rpmbuild -ta`): the tree's tracked
# files as they are in the work tree, vendor/ (`go mod vendor`, from the
# module cache: the build needs no network), and packaging/rpm/thinctl.spec
# with the version, release and date of this tree written in (the one spec
# in the tarball, which is what `rpmbuild -ta` wants).
set -euo pipefail
out="$(mkdir -p "${1:?usage: dist.sh OUTDIR}" && cd "$1" && pwd)"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
top="$(cd "$here/.." && pwd)"
v="$here/version.sh"
ver="$("$v" rpm-version)" rel="$("$v" rpm-release)" desc="$("$v" describe)" date="$("$v" date)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
dir="$work/thinctl-$ver"
mkdir -p "$dir"
(cd "$top" && git ls-files -z | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
	tar --null -T - -cf - | tar -xf - -C "$dir")
(cd "$dir" && GOFLAGS=-mod=mod GOPROXY=off go mod vendor)
{
	printf '%%global thinctl_version %s\n%%global thinctl_release %s\n' "$ver" "$rel"
	printf '%%global thinctl_describe %s\n%%global thinctl_date %s\n' "$desc" "$date"
	cat "$here/rpm/thinctl.spec"
} >"$dir/packaging/rpm/thinctl.spec"
tar -C "$work" --owner=0 --group=0 --sort=name --mtime="$date" -czf "$out/thinctl-$ver.tar.gz" "thinctl-$ver"
echo "$out/thinctl-$ver.tar.gz"

#!/usr/bin/env bash
# packaging/rpm/build.sh BINARY OUTDIR: build thinctl-<version>-<release>.<arch>.rpm
# with rpmbuild from a static thinctl binary (`make rpm`), through the same
# spec a RHEL-style host builds from source (packaging/rpm/thinctl.spec,
# --define prebuilt). The source tarball holds the tree's tracked files as
# they are in the work tree.
set -euo pipefail
bin="$(realpath "${1:?usage: build.sh BINARY OUTDIR}")"
out="$(mkdir -p "${2:?usage: build.sh BINARY OUTDIR}" && cd "$2" && pwd)"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
top="$(cd "$here/../.." && pwd)"
v="$top/packaging/version.sh"
ver="$("$v" rpm-version)" rel="$("$v" rpm-release)" desc="$("$v" describe)" date="$("$v" date)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work"/{SOURCES,BUILD,RPMS,SRPMS,SPECS}
(cd "$top" && git ls-files -z | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
	tar --null -T - --transform "s,^,thinctl-$ver/," --owner=0 --group=0 -czf "$work/SOURCES/thinctl-$ver.tar.gz")
SOURCE_DATE_EPOCH="$(date -d "$date" +%s)" rpmbuild -bb --quiet \
	--define "_topdir $work" \
	--define "prebuilt $bin" \
	--define "thinctl_version $ver" \
	--define "thinctl_release $rel" \
	--define "thinctl_describe $desc" \
	--define "thinctl_date $date" \
	"$here/thinctl.spec" >"$work/log" 2>&1 || { cat "$work/log" >&2; exit 1; }
find "$work/RPMS" -name '*.rpm' -exec cp {} "$out/" \; -printf "$out/%f\n"

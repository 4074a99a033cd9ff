#!/usr/bin/env bash
# packaging/version.sh: the package versions for a `git describe` string.
#
#   packaging/version.sh [--describe STRING] rpm-version|rpm-release|deb-version|describe|date
#
# Without --describe it runs `git describe --tags --long --dirty --always`.
# Mapping (tags look like v1.2.3 or v1.2.3-rc1):
#
#   describe                   rpm Version  rpm Release      deb Version
#   v1.2.3-0-gabc1234          1.2.3        1                1.2.3
#   v1.2.3-5-gabc1234          1.2.3        1.5.gabc1234     1.2.3+5.gabc1234
#   v1.2.3-rc1-0-gabc1234      1.2.3~rc1    1                1.2.3~rc1
#   abc1234 (no tag; N commits) 0.0.0       0.N.gabc1234     0.0.0+N.gabc1234
#   ...-dirty                  (same)       ….dirty          …+dirty / ….dirty
#
# rpm's Version may not hold '-', so a tag's pre-release part is joined with
# '~', which both rpm and dpkg sort before the release itself. Snapshots
# after a tag sort after it (Release 1.N > 1; deb 1.2.3+N > 1.2.3), and
# untagged trees sort before any tag (0.0.0). `date` prints the commit date
# (YYYY-MM-DD) for the man pages.
set -euo pipefail

describe=""
if [ "${1:-}" = "--describe" ]; then
	describe="${2:?--describe needs a string}"
	shift 2
fi
what="${1:?usage: version.sh [--describe STRING] rpm-version|rpm-release|deb-version|describe|date}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if [ "$what" = date ]; then
	git -C "$here/.." log -1 --format=%cd --date=format:%Y-%m-%d 2>/dev/null || date -u +%Y-%m-%d
	exit 0
fi

count=""
if [ -z "$describe" ]; then
	describe="$(git -C "$here/.." describe --tags --long --dirty --always 2>/dev/null || echo unknown)"
	count="$(git -C "$here/.." rev-list --count HEAD 2>/dev/null || echo 0)"
fi
[ "$what" = describe ] && { echo "$describe"; exit 0; }

dirty=0
case "$describe" in *-dirty) dirty=1; describe="${describe%-dirty}" ;; esac

if [[ "$describe" =~ ^v?([0-9]+(\.[0-9]+)*)(-([A-Za-z][A-Za-z0-9.]*))?-([0-9]+)-g([0-9a-f]+)$ ]]; then
	base="${BASH_REMATCH[1]}" pre="${BASH_REMATCH[4]}" n="${BASH_REMATCH[5]}" hash="${BASH_REMATCH[6]}"
	[ -z "$pre" ] || base="$base~$pre"
	if [ "$n" = 0 ]; then
		release=1 debv="$base"
	else
		release="1.$n.g$hash" debv="$base+$n.g$hash"
	fi
elif [[ "$describe" =~ ^[0-9a-f]{4,}$ ]]; then
	base=0.0.0 release="0.${count:-0}.g$describe" debv="0.0.0+${count:-0}.g$describe"
else
	echo "version.sh: cannot map '$describe' to a package version (want vX.Y.Z[-pre]-N-gHASH[-dirty] or a bare hash)" >&2
	exit 1
fi
if [ "$dirty" = 1 ]; then
	release="$release.dirty"
	case "$debv" in *+*) debv="$debv.dirty" ;; *) debv="$debv+dirty" ;; esac
fi

case "$what" in
rpm-version) echo "$base" ;;
rpm-release) echo "$release" ;;
deb-version) echo "$debv" ;;
*) echo "version.sh: unknown output '$what'" >&2; exit 2 ;;
esac

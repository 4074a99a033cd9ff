#!/usr/bin/env bash
# packaging/test.sh BINARY: build the packages from the static thinctl binary
# and check them (`make test-packaging` runs it after `make build`). Each check
# prints "ok: …" or "FAIL: …"; the last line is one summary. It:
#
#  - installs what it needs from Debian when missing (rpm, mandoc, systemd for
#    systemd-analyze, busybox-static, zsh, fish);
#  - builds the RPM (packaging/rpm/build.sh, rpmbuild) and the deb
#    (packaging/deb/build.sh, dpkg-deb) from BINARY, and the RPM again from the
#    source tarball the way a RHEL-style host does (packaging/dist.sh, then
#    rpmbuild -ta; --nodeps because Go here is not an RPM);
#  - checks packaging/version.sh's mapping of git describe strings;
#  - checks that both packages hold exactly the expected files with the
#    expected modes and owners (rpm -qlvp, dpkg-deb -c): one man page per
#    command of the binary's table (thinctl __man), the completion scripts the
#    binary prints; nothing hard-required (rpm -qpR: only rpmlib and the
#    scriptlets' /bin/sh; deb: no Depends), the weak dependencies named; the
#    source-built RPM holds the same files and scriptlets;
#  - checks that the scriptlets (rpm -qp --scripts) run the same systemctl
#    commands as the deb's maintainer scripts;
#  - installs each package into a throwaway chroot (busybox sh, systemctl with
#    its libraries, systemd's own units from this host) with its own tool
#    (dpkg --root, rpm --root): thinctl version runs from it; the installed
#    units pass systemd-analyze verify --root (ExecStart binary present, man
#    pages named in Documentation= found); the installed pages pass mandoc
#    -Tlint; enabling the templates enables the default root; removal
#    disables every enabled instance and removes every file;
#  - runs the man page and completion tests of cmd/thinctl (the shells are
#    installed now, so none of them skips).
set -uo pipefail
bin="$(realpath "${1:?usage: test.sh BINARY}")"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
top="$(cd "$here/.." && pwd)"
t0=$SECONDS
pass=0 fail=0
ok() { echo "ok: $*"; pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }
# check NAME COMMAND...: ok when COMMAND succeeds; its output is shown on failure.
check() {
	local name="$1" out
	shift
	if out="$("$@" 2>&1)"; then ok "$name"; else bad "$name"; echo "$out" | sed 's/^/    /'; fi
}
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# --- tools -------------------------------------------------------------------
need=()
for p in rpm rpm2cpio mandoc systemd busybox-static zsh fish dpkg; do
	[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
	echo "test.sh: installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	{ apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}"; } >/dev/null ||
		{ echo "test.sh: could not install ${need[*]}"; exit 2; }
fi

# --- build ---------------------------------------------------------------------
tb=$SECONDS
rpmf="$("$here/rpm/build.sh" "$bin" "$work/pkg")" || { echo "FAIL: make rpm's build"; exit 1; }
debf="$("$here/deb/build.sh" "$bin" "$work/pkg")" || { echo "FAIL: make deb's build"; exit 1; }
tarball="$("$here/dist.sh" "$work/dist")" || { echo "FAIL: the source tarball"; exit 1; }
mkdir -p "$work/rpmsrc"
if rpmbuild -ta --nodeps --define "_topdir $work/rpmsrc" "$tarball" >"$work/rpmsrc.log" 2>&1; then
	srcrpm="$(find "$work/rpmsrc/RPMS" -name '*.rpm' | head -1)"
	ok "rpmbuild -ta builds the RPM from the source tarball (go build from vendor/, no network)"
else
	srcrpm=""
	bad "rpmbuild -ta builds the RPM from the source tarball"
	tail -20 "$work/rpmsrc.log" | sed 's/^/    /'
fi
echo "built $(basename "$rpmf"), $(basename "$debf") and the source RPM in $((SECONDS - tb))s"

# --- version mapping ---------------------------------------------------------
version_cases() {
	local d want got
	while read -r d want; do
		got="$("$here/version.sh" --describe "$d" rpm-version) $("$here/version.sh" --describe "$d" rpm-release) $("$here/version.sh" --describe "$d" deb-version)"
		[ "$got" = "${want//,/ }" ] || { echo "$d: got '$got', want '${want//,/ }'"; return 1; }
	done <<-'CASES'
	v1.2.3-0-gabc1234 1.2.3,1,1.2.3
	v1.2.3-5-gabc1234 1.2.3,1.5.gabc1234,1.2.3+5.gabc1234
	v1.2.3-5-gabc1234-dirty 1.2.3,1.5.gabc1234.dirty,1.2.3+5.gabc1234.dirty
	v2.0.0-rc1-0-gabc1234 2.0.0~rc1,1,2.0.0~rc1
	abc1234 0.0.0,0.0.gabc1234,0.0.0+0.gabc1234
	abc1234-dirty 0.0.0,0.0.gabc1234.dirty,0.0.0+0.gabc1234.dirty
	CASES
	! "$here/version.sh" --describe "not a version" rpm-version 2>/dev/null || { echo "a junk describe string was mapped"; return 1; }
	# Ordering: a pre-release before its release before a later snapshot.
	dpkg --compare-versions 2.0.0~rc1 lt 2.0.0 && dpkg --compare-versions 1.2.3 lt 1.2.3+5.gabc1234 &&
		dpkg --compare-versions 0.0.0+153.gabc1234 lt 0.1.0 || { echo "deb versions sort wrongly"; return 1; }
}
check "version.sh maps git describe to rpm Version/Release and deb Version, sorting pre-releases and snapshots right" version_cases

# --- expected contents -------------------------------------------------------
"$bin" __man --dir "$work/man" --date 2000-01-01 >/dev/null
pages=()
for p in "$work"/man/*.8; do pages+=("$(basename "$p").gz"); done
expected() { # PREFIX-OF-UNITS ZSH-DIR DOC-DIR [EXTRA-DOC] [LICENSE-FILE]
	echo "-rwxr-xr-x /usr/bin/thinctl"
	for u in thinctl-gc@.service thinctl-gc@.timer thinctl-pool@.service thinctl-watch@.service; do echo "-rw-r--r-- $1/$u"; done
	for p in "${pages[@]}"; do echo "-rw-r--r-- /usr/share/man/man8/$p"; done
	echo "-rw-r--r-- /usr/share/bash-completion/completions/thinctl"
	echo "-rw-r--r-- $2/_thinctl"
	echo "-rw-r--r-- /usr/share/fish/vendor_completions.d/thinctl.fish"
	for d in README.md cli.md packaging.md systemd.md ${4:-}; do echo "-rw-r--r-- $3/$d"; done
	[ -z "${5:-}" ] || echo "-rw-r--r-- $5"
}
rpm_files() {
	rpm -qlvp "$rpmf" | awk '$1 ~ /^-/ && $3 == "root" && $4 == "root" {print $1, $NF} $1 ~ /^-/ && ($3 != "root" || $4 != "root") {print "not root-owned:", $NF}' | LC_ALL=C sort
}
deb_files() {
	dpkg-deb -c "$debf" | awk '$1 ~ /^-/ && $2 == "root/root" {sub("^\\.", "", $6); print $1, $6} $1 ~ /^-/ && $2 != "root/root" {print "not root-owned:", $6}' | LC_ALL=C sort
}
rpmver="$(rpm -qp --qf '%{VERSION}' "$rpmf")"
check "the rpm holds the binary, the units, one man page per command, the completion scripts, the docs and the license (modes, root-owned)" \
	diff -u <(expected /usr/lib/systemd/system /usr/share/zsh/site-functions "/usr/share/doc/thinctl-$rpmver" "" "/usr/share/licenses/thinctl-$rpmver/LICENSE" | LC_ALL=C sort) <(rpm_files)
check "the deb holds the same, in Debian's paths, with the license in copyright" \
	diff -u <(expected /lib/systemd/system /usr/share/zsh/vendor-completions /usr/share/doc/thinctl copyright | LC_ALL=C sort) <(deb_files)
check "both packages name the license: the rpm's License tag and the deb's copyright say Apache-2.0, and the rpm's text is the tree's LICENSE" \
	bash -c "[ \"\$(rpm -qp --qf '%{LICENSE}' '$rpmf')\" = Apache-2.0 ] && dpkg-deb --fsys-tarfile '$debf' | tar -xOf - ./usr/share/doc/thinctl/copyright | grep -qx 'License: Apache-2.0' && rpm2cpio '$rpmf' | (cd '$work' && cpio -id --quiet ./usr/share/licenses/thinctl-$rpmver/LICENSE) && cmp -s '$work/usr/share/licenses/thinctl-$rpmver/LICENSE' '$top/LICENSE'"
check "the rpm requires nothing but rpmlib features and the scriptlets' /bin/sh" \
	bash -c "! rpm -qpR '$rpmf' | grep -v -e '^rpmlib(' -e '^/bin/sh\$'"
check "the rpm weakly requires e2fsprogs, xfsprogs and device-mapper-persistent-data" \
	diff <(printf '%s\n' device-mapper-persistent-data e2fsprogs xfsprogs) <(rpm -qp --recommends "$rpmf" | LC_ALL=C sort)
check "the deb depends on nothing and recommends e2fsprogs, xfsprogs, thin-provisioning-tools" \
	bash -c "[ -z \"\$(dpkg-deb -f '$debf' Depends Pre-Depends)\" ] && [ \"\$(dpkg-deb -f '$debf' Recommends)\" = 'e2fsprogs, xfsprogs, thin-provisioning-tools' ]"
check "the version strings agree: rpm $(rpm -qp --qf '%{VERSION}-%{RELEASE}' "$rpmf"), deb $(dpkg-deb -f "$debf" Version)" \
	bash -c "[ '$(rpm -qp --qf '%{VERSION}-%{RELEASE}' "$rpmf")' = '$("$here/version.sh" rpm-version)-$("$here/version.sh" rpm-release)' ] && [ '$(dpkg-deb -f "$debf" Version)' = '$("$here/version.sh" deb-version)' ]"

# --- scriptlets --------------------------------------------------------------
# systemctl_lines: the systemctl commands of a script, whitespace-normalized.
systemctl_lines() { grep -o 'systemctl [^>]*' | sed 's/ *$//'; }
rpm -qp --scripts "$rpmf" >"$work/scripts"
scriptlet() { awk -v h="$1" '/scriptlet \(using/ {on = ($1 == h)} on' "$work/scripts"; }
scriptlets_match() {
	local pair r d
	for pair in postinstall:postinst preuninstall:prerm postuninstall:postrm; do
		r="${pair%%:*}" d="${pair#*:}"
		diff <(scriptlet "$r" | systemctl_lines) <(systemctl_lines <"$here/deb/$d") || { echo "rpm $r differs from deb $d"; return 1; }
		[ -n "$(systemctl_lines <"$here/deb/$d")" ] || { echo "deb $d runs no systemctl"; return 1; }
	done
	scriptlet preuninstall | grep -q 'if \[ \$1 -eq 0 \]' || { echo "%preun is not limited to removal"; return 1; }
}
check "the rpm's %post/%preun/%postun run the same systemctl commands as the deb's postinst/prerm/postrm" scriptlets_match
if [ -n "$srcrpm" ]; then
	check "the RPM built from source holds the same files, modes and scriptlets as make rpm's" \
		bash -c "diff <(rpm -qlvp '$srcrpm' | awk '\$1 ~ /^-/ {print \$1, \$NF}') <(rpm -qlvp '$rpmf' | awk '\$1 ~ /^-/ {print \$1, \$NF}') &&
			diff <(rpm -qp --scripts '$srcrpm') <(rpm -qp --scripts '$rpmf')"
fi

# --- install into chroots ----------------------------------------------------
# mkchroot DIR: busybox as /bin/sh, /dev/null, systemctl with its libraries,
# and this host's systemd units (targets to enable into, for verify).
mkchroot() {
	local ch="$1" f
	mkdir -p "$ch"/{bin,dev,tmp,etc,usr/lib/systemd/system,lib/systemd/system}
	cp /bin/busybox "$ch/bin/" && ln -s busybox "$ch/bin/sh"
	mknod "$ch/dev/null" c 1 3 && chmod 666 "$ch/dev/null"
	for f in "$(command -v systemctl)" $(ldd "$(command -v systemctl)" | grep -o '/[^ ]*'); do
		mkdir -p "$ch$(dirname "$f")" && cp -L "$f" "$ch$f"
	done
	for f in /usr/lib/systemd/system/*; do
		case "$(basename "$f")" in thinctl*) continue ;; esac
		cp -a "$f" "$ch/usr/lib/systemd/system/" 2>/dev/null
	done
}
# installed_checks CHROOT UNITDIR TOOL: what both packages must give once installed.
installed_checks() {
	local ch="$1" unitdir="$2" tool="$3" inst='thinctl-pool@srv-pool\x2da.service'
	check "$tool: thinctl version runs from the installed package" \
		bash -c "chroot '$ch' /usr/bin/thinctl version | grep -qx 'Version: *$("$bin" version | sed -n 's/^Version: *//p')'"
	check "$tool: the installed units pass systemd-analyze verify (root /srv/pool-a, and the default instance)" \
		bash -c "cd / && out=\$(MANPATH='$ch/usr/share/man' systemd-analyze verify --root='$ch' '$inst' 'thinctl-gc@srv-pool\\x2da.service' 'thinctl-gc@srv-pool\\x2da.timer' 'thinctl-watch@srv-pool\\x2da.service' thinctl-pool@var-lib-thinctl.service 2>&1); rc=\$?; echo \"\$out\"; [ \$rc -eq 0 ] && [ -z \"\$out\" ]"
	check "$tool: the installed man pages pass mandoc -Tlint" \
		bash -c "command -v mandoc >/dev/null || { echo 'mandoc missing'; exit 1; }; for p in '$ch'/usr/share/man/man8/*.8.gz; do zcat \"\$p\" | mandoc -Tlint -W warning || exit 1; done 2>&1 | head -20 | grep . && exit 1 || exit 0"
	check "$tool: the installed completion scripts are what the binary prints" \
		bash -c "cmp <('$bin' completion bash) '$ch/usr/share/bash-completion/completions/thinctl' && cmp <('$bin' completion fish) '$ch/usr/share/fish/vendor_completions.d/thinctl.fish' && cmp <('$bin' completion zsh) '$ch'/usr/share/zsh/*/_thinctl"
	check "$tool: systemctl enable of the templates enables the default root's pool, gc timer and watcher" \
		bash -c "chroot '$ch' systemctl enable thinctl-pool@.service thinctl-gc@.timer thinctl-watch@.service '$inst' 2>&1 | grep -v '^Created symlink' ;
			[ -L '$ch/etc/systemd/system/local-fs.target.wants/thinctl-pool@var-lib-thinctl.service' ] &&
			[ -L '$ch/etc/systemd/system/local-fs.target.wants/$inst' ] &&
			[ -L '$ch/etc/systemd/system/timers.target.wants/thinctl-gc@var-lib-thinctl.timer' ] &&
			[ -L '$ch/etc/systemd/system/multi-user.target.wants/thinctl-watch@var-lib-thinctl.service' ]"
	check "$tool: with the instances enabled, systemd's boot transaction (local-fs.target, multi-user.target, timers.target) has no ordering cycle" \
		bash -c "cd / && out=\$(systemd-analyze verify --man=no --root='$ch' local-fs.target multi-user.target timers.target 2>&1); echo \"\$out\"; [ -z \"\$out\" ]"
}
# cycle_control CHROOT: the cycle check above can fail: the pool unit with
# systemd's default dependencies (after sysinit.target, itself after
# local-fs.target) must make systemd-analyze report a cycle.
cycle_control() {
	local ch="$1" out
	sed 's/^DefaultDependencies=no/DefaultDependencies=yes/' "$ch/lib/systemd/system/thinctl-pool@.service" >"$ch/etc/systemd/system/thinctl-pool@.service"
	out="$(cd / && systemd-analyze verify --man=no --root="$ch" local-fs.target multi-user.target 2>&1)"
	rm "$ch/etc/systemd/system/thinctl-pool@.service"
	echo "$out" | grep -q 'Found ordering cycle' || { echo "no cycle reported:"; echo "$out"; return 1; }
}
after_removal() {
	local ch="$1" tool="$2" left
	left="$(find "$ch/etc/systemd" "$ch/usr" "$ch/lib" -name '*thinctl*' 2>/dev/null)"
	if [ -z "$left" ]; then ok "$tool: removal disabled every enabled instance and removed every file"; else bad "$tool: left after removal:"; echo "$left" | sed 's/^/    /'; fi
}

ch="$work/deb-root"
mkchroot "$ch"
mkdir -p "$ch"/var/lib/dpkg/{info,updates,triggers} && touch "$ch"/var/lib/dpkg/{status,available}
check "dpkg --root installs the deb (maintainer scripts run in the chroot)" dpkg --root="$ch" -i "$debf"
installed_checks "$ch" /lib/systemd/system dpkg
check "dpkg: the cycle check fails for the pool unit with DefaultDependencies=yes (a control)" cycle_control "$ch"
check "dpkg --root removes it" dpkg --root="$ch" -r thinctl
after_removal "$ch" dpkg

ch="$work/rpm-root"
mkchroot "$ch"
check "rpm --root installs the rpm (scriptlets run in the chroot; --nodeps: the chroot's rpmdb lists no /bin/sh)" \
	bash -c "rpm --root='$ch' --initdb && rpm --root='$ch' -i --nodeps '$rpmf'"
installed_checks "$ch" /usr/lib/systemd/system rpm
check "rpm --root erases it" rpm --root="$ch" -e thinctl
after_removal "$ch" rpm

# --- Go tests that need the shells and mandoc ------------------------------
if (cd "$top" && go test -count=1 -run 'Completion|Man' ./cmd/thinctl >"$work/gotest" 2>&1) && ! grep -q -- '--- SKIP' "$work/gotest"; then
	ok "go test -run 'Completion|Man' ./cmd/thinctl: bash, zsh and fish completion driven, pages linted ($(tail -1 "$work/gotest" | awk '{print $NF}'))"
else
	bad "go test -run 'Completion|Man' ./cmd/thinctl"
	sed 's/^/    /' "$work/gotest" | tail -30
fi

echo "packaging: $pass checks passed, $fail failed ($(basename "$rpmf"), $(basename "$debf")) in $((SECONDS - t0))s"
[ "$fail" -eq 0 ]

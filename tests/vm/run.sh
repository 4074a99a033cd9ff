#!/usr/bin/env bash
# tests/vm/run.sh: run thinctl's real-kernel tests in a throwaway qemu VM.
#
# It installs what it needs (Debian), fetches Debian's kernel package, builds
# a busybox initramfs with the kernel modules, the tools the tests use as
# oracles and the `go test -c -tags vm,failpoints` binaries, boots it under qemu, streams
# the serial console and exits with the guest's status. See tests/vm/README.md.
set -euo pipefail

usage() {
	cat <<'EOF'
usage: tests/vm/run.sh [flags]

  --pkg PKG        package to test (repeatable; default: every package with a
                   //go:build vm file)
  --run REGEX      passed to the test binaries as -test.run
  --no-udev        boot once without udev (default)
  --udev           boot once with systemd-udevd and the dm udev rules
  --both           boot twice: without udev, then with udev
  --timeout DUR    kill a guest that runs longer (default 40m; s/m/h suffixes)
  --test-timeout DUR  -test.timeout for each test binary (default 20m, at most
                   the guest's bound less a minute)
  --script FILE    run FILE with bash in the guest instead of the Go tests
                   (bin/thinctl, when built, is on the guest's PATH)
  --extra-bin PATH copy another binary onto the guest's PATH (repeatable)
  --debs LIST      put the programs (or shared libraries) LIST names, from Debian
                   packages, into the guest, like a test package's testdata/vm-debs
                   (repeatable; for --script runs)
  --module NAME    load kernel module NAME (from Debian's kernel package, after
                   the standard ones; its dependencies must be among them) at boot
                   (repeatable)
  --keep           keep the per-run build directory
  --state-disk FILE  attach FILE (created sparse, 2 GiB, when missing) as a
                   second virtio disk that keeps its contents from one boot to
                   the next; the guest never formats it
  --max-boots N    boot again, up to N boots per mode, while the guest asks
                   for it (a test that cut the power: THINCTL_VM_POWERCUT);
                   N > 1 without --state-disk attaches a fresh one per mode
  --docker         attach Debian's docker.io, containerd and runc (fetched and
                   cached like the kernel) as a read-only disk, mounted at
                   $THINCTL_VM_DOCKER in the guest
  --memory MIB     guest memory (default 2048)
  --accel A        tcg (default) or kvm
  -h, --help       this text
EOF
}

die() { echo "run.sh: $*" >&2; exit 2; }
log() { echo "run.sh: $*" >&2; }

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CACHE="$HERE/.cache"
# Per-run directories (initramfs, scratch disk image, console logs) live
# outside the work tree, so that a `make clean` or `git clean` elsewhere cannot
# pull them from under a running guest. THINCTL_VM_WORKDIR overrides.
BUILDROOT="${THINCTL_VM_WORKDIR:-${TMPDIR:-/tmp}/thinctl-vm}"

PKGS=()
RUN_REGEX=""
MODES=(noudev)
TIMEOUT="${THINCTL_VM_TIMEOUT:-40m}"
TEST_TIMEOUT="${THINCTL_VM_TEST_TIMEOUT:-20m}"
SCRIPT=""
EXTRA_BINS=()
DEBS_LISTS=()
EXTRA_MODULES=()
KEEP=0
MEMORY="${THINCTL_VM_MEMORY:-2048}"
STATE_DISK=""
MAX_BOOTS=1
ACCEL="${THINCTL_VM_ACCEL:-tcg}"
DOCKER=0

while [ $# -gt 0 ]; do
	case "$1" in
	--pkg) PKGS+=("${2:?--pkg needs a package}"); shift 2 ;;
	--pkg=*) PKGS+=("${1#*=}"); shift ;;
	--run) RUN_REGEX="${2?--run needs a regex}"; shift 2 ;;
	--run=*) RUN_REGEX="${1#*=}"; shift ;;
	--no-udev) MODES=(noudev); shift ;;
	--udev) MODES=(udev); shift ;;
	--both) MODES=(noudev udev); shift ;;
	--timeout) TIMEOUT="${2:?--timeout needs a duration}"; shift 2 ;;
	--timeout=*) TIMEOUT="${1#*=}"; shift ;;
	--test-timeout) TEST_TIMEOUT="${2:?--test-timeout needs a duration}"; shift 2 ;;
	--test-timeout=*) TEST_TIMEOUT="${1#*=}"; shift ;;
	--script) SCRIPT="${2:?--script needs a file}"; shift 2 ;;
	--script=*) SCRIPT="${1#*=}"; shift ;;
	--extra-bin) EXTRA_BINS+=("${2:?--extra-bin needs a path}"); shift 2 ;;
	--extra-bin=*) EXTRA_BINS+=("${1#*=}"); shift ;;
	--debs) DEBS_LISTS+=("${2:?--debs needs a list file}"); shift 2 ;;
	--module) EXTRA_MODULES+=("${2:?--module needs a module name}"); shift 2 ;;
	--keep) KEEP=1; shift ;;
	--state-disk) STATE_DISK="${2:?--state-disk needs a file}"; shift 2 ;;
	--state-disk=*) STATE_DISK="${1#*=}"; shift ;;
	--max-boots) MAX_BOOTS="${2:?--max-boots needs a number}"; shift 2 ;;
	--max-boots=*) MAX_BOOTS="${1#*=}"; shift ;;
	--docker) DOCKER=1; shift ;;
	--memory) MEMORY="${2:?}"; shift 2 ;;
	--accel) ACCEL="${2:?}"; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; die "unknown argument: $1" ;;
	esac
done

# seconds converts 90, 90s, 15m, 1h or a Go-style 1h30m into seconds.
seconds() {
	local s="$1" total=0 n
	[[ "$s" =~ ^[0-9]+$ ]] && { echo "$s"; return; }
	while [ -n "$s" ]; do
		[[ "$s" =~ ^([0-9]+)([hms])(.*)$ ]] || die "bad duration: $1 (use e.g. 90s, 15m, 1h)"
		n="${BASH_REMATCH[1]}"
		case "${BASH_REMATCH[2]}" in h) n=$((n * 3600)) ;; m) n=$((n * 60)) ;; esac
		total=$((total + n))
		s="${BASH_REMATCH[3]}"
	done
	echo "$total"
}
TIMEOUT_S="$(seconds "$TIMEOUT")"
[ "$TIMEOUT_S" -gt 0 ] || die "--timeout must be positive"
TEST_TIMEOUT_S="$(seconds "$TEST_TIMEOUT")"
[ "$TEST_TIMEOUT_S" -gt 0 ] || die "--test-timeout must be positive"
[ "$TIMEOUT_S" -le 120 ] || [ "$TEST_TIMEOUT_S" -le $((TIMEOUT_S - 60)) ] || TEST_TIMEOUT_S=$((TIMEOUT_S - 60))
[ -z "$SCRIPT" ] || [ -f "$SCRIPT" ] || die "--script $SCRIPT: no such file"
for b in "${EXTRA_BINS[@]}"; do [ -f "$b" ] || die "--extra-bin $b: no such file"; done
for b in "${DEBS_LISTS[@]}"; do [ -f "$b" ] || die "--debs $b: no such file"; done
[[ "$MAX_BOOTS" =~ ^[1-9][0-9]*$ ]] || die "--max-boots wants a whole number from 1, not $MAX_BOOTS"
if [ -n "$STATE_DISK" ]; then
	[ ! -e "$STATE_DISK" ] || [ -f "$STATE_DISK" ] || die "--state-disk $STATE_DISK: not a regular file"
	case "$STATE_DISK" in /*) ;; *) STATE_DISK="$PWD/$STATE_DISK" ;; esac
fi

case ":$PATH:" in *:/usr/local/go/bin:*) ;; *) [ -d /usr/local/go/bin ] && PATH="$PATH:/usr/local/go/bin" ;; esac
case ":$PATH:" in *:/usr/sbin:*) ;; *) PATH="$PATH:/usr/sbin:/sbin" ;; esac
export PATH

mkdir -p "$CACHE" "$BUILDROOT"

# ---------------------------------------------------------------------------
# 1. Host packages.

HOST_PKGS=(qemu-system-x86 busybox-static cpio kmod e2fsprogs xfsprogs
	thin-provisioning-tools dmsetup udev util-linux xz-utils zstd)

ensure_packages() {
	local missing=() p
	for p in "${HOST_PKGS[@]}"; do
		if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]; then
			missing+=("$p")
		fi
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	command -v apt-get >/dev/null || die "missing packages ${missing[*]} and no apt-get to install them"
	[ "$(id -u)" -eq 0 ] || die "missing packages ${missing[*]}: run as root (or apt-get install them)"
	log "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# ---------------------------------------------------------------------------
# 2. Debian's kernel: vmlinuz and the modules we need, unpacked into the cache.

MODULES=(virtio_pci virtio_blk crc32c_generic dm-mod dm-thin-pool dm-zero loop ext4 xfs overlay)

ensure_kernel() {
	local cur="$CACHE/kernel-current"
	if [ -f "$cur" ] && [ -f "$CACHE/$(cat "$cur")/ready" ]; then
		KVER="$(cat "$cur")"
		[ -f "$CACHE/$KVER/vmlinux" ] || [ -f "$CACHE/$KVER/no-vmlinux" ] ||
			extract_vmlinux "$CACHE/$KVER/vmlinuz" "$CACHE/$KVER/vmlinux" || touch "$CACHE/$KVER/no-vmlinux"
		return 0
	fi
	local dl="$CACHE/debs"
	mkdir -p "$dl"
	log "fetching Debian's kernel package"
	(cd "$dl" && apt-get -o APT::Sandbox::User=root download -q linux-image-amd64 >/dev/null) ||
		{ apt-get update -qq && (cd "$dl" && apt-get -o APT::Sandbox::User=root download -q linux-image-amd64 >/dev/null); }
	local meta dep
	meta="$(ls -t "$dl"/linux-image-amd64_*.deb | head -1)"
	dep="$(dpkg-deb -f "$meta" Depends | tr ',|' '\n\n' | sed -n 's/^ *\(linux-image-[0-9][^ ]*\).*/\1/p' | head -1)"
	[ -n "$dep" ] || die "cannot find the versioned kernel package in $(basename "$meta")'s Depends"
	(cd "$dl" && apt-get -o APT::Sandbox::User=root download -q "$dep" >/dev/null)
	local deb kdir
	deb="$(ls -t "$dl/${dep}"_*.deb | head -1)"
	KVER="${dep#linux-image-}"
	kdir="$CACHE/$KVER"
	rm -rf "$kdir"
	mkdir -p "$kdir/unpacked" "$kdir/modules"
	dpkg-deb -x "$deb" "$kdir/unpacked"
	# merged-/usr packages put modules under usr/lib; modprobe -d wants lib/modules.
	local mroot="$kdir/unpacked"
	[ -d "$mroot/lib/modules/$KVER" ] || mroot="$kdir/unpacked/usr"
	[ -d "$mroot/lib/modules/$KVER" ] || die "no modules for $KVER in $deb"
	depmod -b "$mroot" "$KVER"
	cp "$kdir/unpacked/boot/vmlinuz-$KVER" "$kdir/vmlinuz"
	extract_vmlinux "$kdir/vmlinuz" "$kdir/vmlinux" || log "note: could not extract vmlinux; booting the compressed kernel"
	local m line ko n=0 seen=" "
	: >"$kdir/modules/order"
	for m in "${MODULES[@]}"; do
		while read -r line; do
			case "$line" in insmod\ *) ;; *) continue ;; esac
			ko="$(echo "$line" | awk '{print $2}')"
			case "$seen" in *" $ko "*) continue ;; esac
			seen="$seen$ko "
			n=$((n + 1))
			local base out
			base="$(basename "$ko")"
			out="$(printf '%02d-%s' "$n" "${base%%.ko*}.ko")"
			case "$ko" in
			*.ko.xz) xz -dc "$ko" >"$kdir/modules/$out" ;;
			*.ko.zst) zstd -qdc "$ko" >"$kdir/modules/$out" ;;
			*.ko.gz) gzip -dc "$ko" >"$kdir/modules/$out" ;;
			*) cp "$ko" "$kdir/modules/$out" ;;
			esac
			echo "$out" >>"$kdir/modules/order"
		done < <(modprobe -d "$mroot" -S "$KVER" --show-depends "$m" 2>/dev/null || true)
	done
	grep -q 'dm-thin-pool' "$kdir/modules/order" || grep -q 'dm_thin_pool' "$kdir/modules/order" ||
		die "modprobe found no dm-thin-pool module in $KVER"
	rm -rf "$kdir/unpacked" # keep only what the guest needs
	touch "$kdir/ready"
	echo "$KVER" >"$cur"
	log "kernel $KVER ready ($(wc -l <"$kdir/modules/order") modules)"
}

# extract_vmlinux BZIMAGE OUT: unpack the ELF kernel inside a bzImage. qemu
# boots it directly through its PVH entry point, which skips the kernel's
# self-decompression: that alone takes 5-30 s under emulation.
extract_vmlinux() {
	local img="$1" out="$2" off magic tool
	for magic in 'xz:\xfd7zXZ\x00' 'zstd:\x28\xb5\x2f\xfd' 'gzip:\x1f\x8b\x08'; do
		tool="${magic%%:*}"
		for off in $(LC_ALL=C grep -aboP "${magic#*:}" "$img" | cut -d: -f1); do
			case "$tool" in
			xz) tail -c +$((off + 1)) "$img" | xz -dc 2>/dev/null >"$out" || true ;;
			zstd) tail -c +$((off + 1)) "$img" | zstd -qdc 2>/dev/null >"$out" || true ;;
			gzip) tail -c +$((off + 1)) "$img" | gzip -dc 2>/dev/null >"$out" || true ;;
			esac
			if [ "$(head -c 4 "$out" | od -An -tx1 | tr -d ' \n')" = 7f454c46 ]; then
				return 0
			fi
		done
	done
	rm -f "$out"
	return 1
}

# ---------------------------------------------------------------------------
# 3. The base initramfs: busybox, tools with their libraries, udev, modules.
#    It depends only on the kernel, the host's packages and guest/, so it is
#    cached; the per-run part (tests, config) is a second cpio archive.

TOOLS=(bash dmsetup thin_check thin_dump thin_repair thin_restore thin_ls thin_metadata_size
	mkfs.ext4 mke2fs resize2fs e2fsck tune2fs dumpe2fs mkfs.xfs xfs_growfs xfs_io xfs_repair
	xfs_admin xfs_db xfs_info blkid losetup udevadm findmnt mount umount wipefs blockdev)

# copy_with_libs SRC DEST_IN_ROOT: copy a program and the shared libraries it needs.
copy_with_libs() {
	local src="$1" dst="$2" lib
	mkdir -p "$STAGE$(dirname "$dst")"
	cp -L "$src" "$STAGE$dst"
	chmod 0755 "$STAGE$dst"
	while read -r lib; do
		[ -n "$lib" ] && [ -e "$lib" ] || continue
		[ -e "$STAGE$lib" ] && continue
		mkdir -p "$STAGE$(dirname "$lib")"
		cp -L "$lib" "$STAGE$lib"
	done < <(ldd "$src" 2>/dev/null | awk '/=>/ {print $3} !/=>/ && $1 ~ /^\// {print $1}')
}

build_base() {
	local key stamp
	key="$( {
		echo "$KVER"
		declare -f build_base copy_with_libs
		declare -p TOOLS
		cat "$HERE"/guest/*
		dpkg-query -W "${HOST_PKGS[@]}" 2>/dev/null
	} | sha256sum | cut -c1-16)"
	BASE="$CACHE/base-$KVER-$key.cpio"
	[ -f "$BASE" ] && return 0
	log "building the base initramfs"
	STAGE="$(mktemp -d "$BUILDROOT/base.XXXXXX")"
	mkdir -p "$STAGE"/{bin,dev,proc,sys,run,tmp,etc,root,scratch,mnt,usr/bin,usr/sbin,usr/local/bin,lib/modules,lib/udev/rules.d,tests}
	ln -s usr/sbin "$STAGE/sbin"
	cp /bin/busybox "$STAGE/bin/busybox"
	local a t p
	for a in $(/bin/busybox --list); do
		[ -e "$STAGE/bin/$a" ] || ln -s busybox "$STAGE/bin/$a"
	done
	for t in "${TOOLS[@]}"; do
		p="$(command -v "$t" || true)"
		[ -n "$p" ] || { log "note: $t not on the host, not in the guest"; continue; }
		case "$t" in
		bash | udevadm | findmnt | mount | umount | xfs_io | xfs_db | losetup | wipefs | blockdev) copy_with_libs "$p" "/usr/bin/$t" ;;
		*) copy_with_libs "$p" "/usr/sbin/$t" ;;
		esac
	done
	# systemd-udevd and the rules the device-mapper tests depend on.
	copy_with_libs /lib/systemd/systemd-udevd /lib/systemd/systemd-udevd
	# Helpers the storage rules import (Debian's 55-dm.rules combines upstream
	# lvm2's 10-dm.rules and 13-dm-disk.rules; dmsetup is called as /sbin/dmsetup).
	local h
	for h in ata_id scsi_id; do
		[ -x "/lib/udev/$h" ] && copy_with_libs "/lib/udev/$h" "/lib/udev/$h"
	done
	local r
	for r in 50-udev-default.rules 10-dm.rules 13-dm-disk.rules 55-dm.rules 60-persistent-storage-dm.rules \
		95-dm-notify.rules 60-block.rules 60-persistent-storage.rules; do
		[ -f "/lib/udev/rules.d/$r" ] && cp "/lib/udev/rules.d/$r" "$STAGE/lib/udev/rules.d/"
	done
	mkdir -p "$STAGE/etc/udev"
	[ -f /etc/udev/udev.conf ] && cp /etc/udev/udev.conf "$STAGE/etc/udev/"
	[ -f /etc/mke2fs.conf ] && cp /etc/mke2fs.conf "$STAGE/etc/"
	cat >"$STAGE/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/usr/bin/bash
nobody:x:65534:65534:nobody:/nonexistent:/bin/sh
EOF
	cat >"$STAGE/etc/group" <<'EOF'
root:x:0:
tty:x:5:
disk:x:6:
kmem:x:15:
dialout:x:20:
cdrom:x:24:
tape:x:26:
audio:x:29:
video:x:44:
input:x:105:
kvm:x:106:
render:x:107:
sgx:x:108:
nogroup:x:65534:
EOF
	echo "thinctl-vm" >"$STAGE/etc/hostname"
	: >"$STAGE/etc/fstab"
	ln -sf /proc/self/mounts "$STAGE/etc/mtab"
	cp "$CACHE/$KVER/modules/"* "$STAGE/lib/modules/"
	echo "$KVER" >"$STAGE/etc/kernel-version"
	cp "$HERE/guest/init" "$STAGE/init"
	cp "$HERE/guest/lib.sh" "$STAGE/lib/thinctl-vm.sh"
	chmod 0755 "$STAGE/init"
	(cd "$STAGE" && find . | LC_ALL=C sort | cpio -o -H newc --quiet >"$BASE.tmp")
	mv "$BASE.tmp" "$BASE"
	rm -rf "$STAGE"
	# Drop older base archives.
	find "$CACHE" -maxdepth 1 -name 'base-*.cpio' ! -name "$(basename "$BASE")" -mmin +60 -delete 2>/dev/null || true
}

# ---------------------------------------------------------------------------
# 3b. With --docker: Debian's docker.io (the last Docker with the devicemapper
#     graph driver), containerd and runc with the shared libraries they need,
#     in an ext4 image the guest mounts read-only. About 190 MB: a disk of its
#     own keeps it out of the initramfs the kernel unpacks into RAM.

DOCKER_DEBS=(docker.io containerd runc)
DOCKER_BINS=(/usr/sbin/dockerd /usr/bin/docker /usr/bin/containerd /usr/bin/containerd-shim-runc-v2 /usr/sbin/runc)

ensure_docker() {
	local dl="$CACHE/docker-debs" key
	mkdir -p "$dl"
	if ! ls "$dl"/docker.io_*.deb "$dl"/containerd_*.deb "$dl"/runc_*.deb >/dev/null 2>&1; then
		log "fetching Debian's ${DOCKER_DEBS[*]}"
		(cd "$dl" && apt-get -o APT::Sandbox::User=root download -q "${DOCKER_DEBS[@]}" >/dev/null) ||
			{ apt-get update -qq && (cd "$dl" && apt-get -o APT::Sandbox::User=root download -q "${DOCKER_DEBS[@]}" >/dev/null); }
	fi
	key="$( {
		declare -f ensure_docker
		declare -p DOCKER_BINS
		ls "$dl"
		dpkg-query -W libc6 libdevmapper1.02.1 libsystemd0 libseccomp2 2>/dev/null
	} | sha256sum | cut -c1-16)"
	DOCKER_IMG="$CACHE/docker-$key.img"
	[ -f "$DOCKER_IMG" ] && return 0
	log "building the docker disk"
	local x stage b lib
	x="$(mktemp -d "$BUILDROOT/docker.XXXXXX")"
	stage="$x/root"
	mkdir -p "$stage/bin" "$stage/lib"
	for b in "$dl"/docker.io_*.deb "$dl"/containerd_*.deb "$dl"/runc_*.deb; do dpkg-deb -x "$b" "$x/debs"; done
	# Programs in bin/, the libraries ldd names (from the host, which has
	# the same Debian release) in lib/, which the guest's init
	# links into /lib/x86_64-linux-gnu (the loader's path).
	for b in "${DOCKER_BINS[@]}"; do
		cp "$x/debs$b" "$stage/bin/"
		while read -r lib; do
			[ -n "$lib" ] && [ -e "$lib" ] || continue
			cp -nL "$lib" "$stage/lib/"
		done < <(ldd "$x/debs$b" 2>/dev/null | awk '/=>/ {print $3}')
	done
	dpkg-deb -f "$dl"/docker.io_*.deb Version >"$stage/docker-version"
	mke2fs -q -t ext4 -O ^has_journal -L thinctl-docker -d "$stage" "$x/img" \
		"$(( ($(du -sm "$stage" | cut -f1) + 64) ))M"
	mv "$x/img" "$DOCKER_IMG"
	rm -rf "$x"
	find "$CACHE" -maxdepth 1 -name 'docker-*.img' ! -name "$(basename "$DOCKER_IMG")" -mmin +60 -delete 2>/dev/null || true
	log "docker disk ready: $(basename "$DOCKER_IMG") ($(du -sh "$DOCKER_IMG" | cut -f1))"
}

setup() {
	(
		flock 9
		ensure_packages
		ensure_kernel
		build_base
		DOCKER_IMG=""
		[ "$DOCKER" = 0 ] || ensure_docker
		echo "$DOCKER_IMG" >"$CACHE/.setup-docker.$$"
		# A link of our own, taken under the lock: another run that builds a
		# newer base may delete this one before build_run reads it.
		ln -f "$BASE" "$BUILDROOT/.base.$$.cpio" 2>/dev/null || cp "$BASE" "$BUILDROOT/.base.$$.cpio"
		echo "$KVER $BUILDROOT/.base.$$.cpio" >"$CACHE/.setup-result.$$"
	) 9>"$CACHE/.lock"
	read -r KVER BASE <"$CACHE/.setup-result.$$"
	DOCKER_IMG="$(cat "$CACHE/.setup-docker.$$")"
	rm -f "$CACHE/.setup-result.$$" "$CACHE/.setup-docker.$$"
}

# ---------------------------------------------------------------------------
# 4. The per-run part: test binaries (or the script), config.

# vm_packages lists the packages that have at least one //go:build vm file.
vm_packages() {
	(cd "$ROOT" && grep -rlP --include='*_test.go' '^//go:build .*(?<![!\w])vm\b' . 2>/dev/null |
		grep -v '/\.' | xargs -r -n1 dirname | LC_ALL=C sort -u)
}

# guest_debs LIST STAGE: put the programs LIST names ("PACKAGE PROGRAM..."
# per line; # starts a comment) on the guest's PATH, from Debian packages
# fetched once with apt-get download (the guest has no network) and
# unpacked under the cache, like the kernel. A name ending in .so.* is a
# shared library the package ships; it goes to the guest's
# /lib/x86_64-linux-gnu, for a program whose library the host lacks.
guest_debs() {
	local list="$1" stage="$2" pkg progs prog dir deb p
	while read -r pkg progs; do
		case "$pkg" in "" | \#*) continue ;; esac
		dir="$CACHE/deb-$pkg"
		if [ ! -f "$dir/ready" ]; then
			(
				flock 9
				[ -f "$dir/ready" ] && exit 0
				mkdir -p "$CACHE/debs"
				log "fetching Debian's $pkg package for the guest"
				(cd "$CACHE/debs" && apt-get -o APT::Sandbox::User=root download -q "$pkg" >/dev/null) ||
					{ apt-get update -qq && (cd "$CACHE/debs" && apt-get -o APT::Sandbox::User=root download -q "$pkg" >/dev/null); } ||
					die "apt-get download $pkg failed"
				deb="$(ls -t "$CACHE/debs/${pkg}"_*.deb | head -1)"
				rm -rf "$dir"
				mkdir -p "$dir"
				dpkg-deb -x "$deb" "$dir"
				basename "$deb" >"$dir/ready"
			) 9>"$CACHE/.lock-debs" || exit 2
		fi
		for prog in $progs; do
			p=""
			case "$prog" in
			*.so.*)
				for p in "$dir/lib/x86_64-linux-gnu/$prog" "$dir/usr/lib/x86_64-linux-gnu/$prog" ""; do
					[ -z "$p" ] || [ -f "$p" ] && break
				done
				[ -n "$p" ] || die "$pkg ($(cat "$dir/ready")) has no library $prog"
				STAGE="$stage" copy_with_libs "$p" "/lib/x86_64-linux-gnu/$prog"
				continue
				;;
			esac
			for p in "$dir/usr/bin/$prog" "$dir/usr/sbin/$prog" "$dir/bin/$prog" "$dir/sbin/$prog" ""; do
				[ -z "$p" ] || [ -f "$p" ] && break
			done
			[ -n "$p" ] || die "$pkg ($(cat "$dir/ready")) has no program $prog"
			STAGE="$stage" copy_with_libs "$p" "/usr/local/bin/$prog"
		done
	done <"$list"
}

# extra_modules STAGE: the --module modules, unpacked from the cached kernel
# package into STAGE/lib/modules and appended to the boot's load order (the
# run's archive comes after the base one, so its order file wins).
extra_modules() {
	local stage="$1" kdeb list ko m
	kdeb="$(ls -t "$CACHE/debs/linux-image-${KVER}"_*.deb 2>/dev/null | head -1)"
	[ -n "$kdeb" ] || die "--module: Debian's kernel package for $KVER is not in $CACHE/debs"
	list="$(dpkg-deb --fsys-tarfile "$kdeb" | tar -t)"
	mkdir -p "$stage/lib/modules"
	cp "$CACHE/$KVER/modules/order" "$stage/lib/modules/order"
	for m in "${EXTRA_MODULES[@]}"; do
		ko="$(echo "$list" | grep "/kernel/.*/$m\.ko" | head -1)"
		[ -n "$ko" ] || die "--module $m: $(basename "$kdeb") has no such module"
		dpkg-deb --fsys-tarfile "$kdeb" | tar -xO "$ko" | case "$ko" in
			*.xz) xz -dc ;; *.zst) zstd -qdc ;; *.gz) gzip -dc ;; *) cat ;;
		esac >"$stage/lib/modules/90-$m.ko"
		echo "90-$m.ko" >>"$stage/lib/modules/order"
	done
}

build_run() {
	RUN="$(mktemp -d "$BUILDROOT/run.XXXXXX")"
	local stage="$RUN/stage" pkg rel name
	mkdir -p "$stage/tests" "$stage/etc" "$stage/usr/local/bin" "$RUN/bin"
	if [ -n "$SCRIPT" ]; then
		cp "$SCRIPT" "$stage/tests/script.sh"
		echo "$(basename "$SCRIPT")" >"$stage/etc/thinctl-script-name"
		if [ -x "$ROOT/bin/thinctl" ]; then
			cp "$ROOT/bin/thinctl" "$stage/usr/local/bin/thinctl"
		else
			log "note: bin/thinctl not built (make build); the script runs without it"
		fi
	else
		if [ ${#PKGS[@]} -eq 0 ]; then
			mapfile -t PKGS < <(vm_packages)
			[ ${#PKGS[@]} -gt 0 ] || die "no package has a //go:build vm test file"
		fi
		log "building test binaries: ${PKGS[*]}"
		local t0=$SECONDS dirs=() dir
		# Resolve patterns (./..., import paths) to package directories.
		local mod sub
		for pkg in "${PKGS[@]}"; do
			# A package of a nested module (containerd/ has its own
			# go.mod) is listed from that module's directory.
			mod="$ROOT" sub="$pkg"
			case "$pkg" in
			./*)
				mod="$ROOT/${pkg#./}"
				mod="${mod%/...}"
				while [ "$mod" != "$ROOT" ] && [ ! -f "$mod/go.mod" ]; do mod="$(dirname "$mod")"; done
				sub="${ROOT}/${pkg#./}"
				sub=".${sub#"$mod"}"
				;;
			esac
			mapfile -t -O "${#dirs[@]}" dirs < <(cd "$mod" && go list -tags vm,failpoints -f '{{.Dir}}' "$sub") ||
				die "go list $pkg failed"
		done
		for dir in "${dirs[@]}"; do
			rel="${dir#"$ROOT"}"
			rel="${rel#/}"
			name="$(echo "${rel:-root}" | tr '/' '_')"
			if ! (cd "$dir" && CGO_ENABLED=0 go test -c -tags vm,failpoints -o "$RUN/bin/$name.test" .); then
				log "BUILD FAILED: ./$rel (its tests will not run)"
				BUILD_FAILED+=("./$rel")
				continue
			fi
			[ -f "$RUN/bin/$name.test" ] || continue # no test files
			mkdir -p "$stage/tests/$name"
			mv "$RUN/bin/$name.test" "$stage/tests/$name/$name.test"
			# The binary runs in a copy of its package directory's testdata.
			[ -d "$dir/testdata" ] && cp -r "$dir/testdata" "$stage/tests/$name/"
			# testdata/vm-debs names Debian packages whose programs the
			# tests run ("PACKAGE PROGRAM..." per line).
			[ -f "$dir/testdata/vm-debs" ] && guest_debs "$dir/testdata/vm-debs" "$stage"
		done
		log "test binaries built in $((SECONDS - t0))s"
		ls "$stage/tests"/*/*.test >/dev/null 2>&1 || die "no test binaries were built${BUILD_FAILED[*]:+ (build failed: ${BUILD_FAILED[*]})}"
	fi
	local b
	for b in "${EXTRA_BINS[@]}"; do
		STAGE="$stage" copy_with_libs "$b" "/usr/local/bin/$(basename "$b")"
	done
	for b in "${DEBS_LISTS[@]}"; do guest_debs "$b" "$stage"; done
	[ ${#EXTRA_MODULES[@]} -eq 0 ] || extra_modules "$stage"
	local testto="$TEST_TIMEOUT_S"
	{
		printf 'VM_RUN=%q\n' "$RUN_REGEX"
		printf 'VM_TEST_TIMEOUT=%ss\n' "$testto"
	} >"$stage/etc/thinctl-vm.conf"
	(cd "$stage" && find . | LC_ALL=C sort | cpio -o -H newc --quiet >"$RUN/run.cpio")
	cat "$BASE" "$RUN/run.cpio" >"$RUN/initrd.cpio"
	rm -rf "$stage" "$RUN/run.cpio" "$BASE"
}

# ---------------------------------------------------------------------------
# 5. Boot.

# count_results and summary_line, shared with the guest's init.
# shellcheck source=guest/lib.sh
. "$HERE/guest/lib.sh"

SUMMARIES=()
BUILD_FAILED=()
TOTAL_P=0 TOTAL_F=0 TOTAL_S=0

# boot_once MODE K STATE: boot guest number K of MODE (STATE: the state disk
# or empty) and read its console. It returns the guest's status and sets
# B_SUMMARY (the guest's summary line), B_COUNTS ("passed failed skipped"),
# B_ELAPSED (seconds), B_LOG (the console log) and B_REBOOT (1 when the guest
# cut its power and asked for another boot).
boot_once() {
	local mode="$1" k="$2" state="$3" disk="$RUN/scratch-$mode.img" logf="$RUN/console-$mode.log" rc=0
	[ "$k" -eq 1 ] || logf="$RUN/console-$mode.boot$k.log"
	B_SUMMARY="" B_COUNTS="" B_FAILED="" B_REBOOT=0 B_ELAPSED=0 B_LOG="$logf"
	rm -f "$disk"
	truncate -s 8G "$disk"
	local accel=(-accel tcg,thread=multi -cpu max)
	[ "$ACCEL" = kvm ] && accel=(-accel kvm -cpu host)
	# qboot starts the kernel in a fraction of SeaBIOS's time and prints nothing.
	local bios=()
	[ -f /usr/share/qemu/qboot.rom ] && bios=(-bios /usr/share/qemu/qboot.rom)
	# The state disk: found by the guest through its serial, never formatted
	# by init. What the guest wrote to it before a power cut is in the file
	# (with cache=unsafe, in the host's page cache): the next boot sees it.
	local extra=() append="console=ttyS0 panic=-1 quiet thinctl.mode=$mode"
	[ -z "$state" ] || extra=(-drive "file=$state,format=raw,if=none,id=state,cache=unsafe"
		-device "virtio-blk-pci,drive=state,serial=thinctl-state")
	if [ -n "$DOCKER_IMG" ]; then
		extra+=(-drive "file=$DOCKER_IMG,format=raw,if=none,id=docker,readonly=on"
			-device "virtio-blk-pci,drive=docker,serial=thinctl-docker")
		append="$append thinctl.dockerdisk=1"
	fi
	if [ -n "$state" ] || [ "$MAX_BOOTS" -gt 1 ]; then
		# no_timer_check: on a loaded host the kernel's early IO-APIC timer
		# check can fail under emulation and panic the boot; a chain of
		# boots makes that likely enough to matter.
		append="$append no_timer_check thinctl.boot=$k thinctl.maxboots=$MAX_BOOTS"
		[ -z "$state" ] || append="$append thinctl.statedisk=1"
		echo "=== VM boot: mode $mode, kernel $KVER, timeout ${TIMEOUT_S}s, boot $k of at most $MAX_BOOTS ==="
	else
		echo "=== VM boot: mode $mode, kernel $KVER, timeout ${TIMEOUT_S}s ==="
	fi
	# The uncompressed kernel boots through PVH; fall back to the bzImage.
	local kernel="$CACHE/$KVER/vmlinux"
	[ -f "$kernel" ] && [ "${THINCTL_VM_KERNEL:-}" != bzimage ] || kernel="$CACHE/$KVER/vmlinuz"
	local t0=$SECONDS
	set +e
	timeout --kill-after=10 "$TIMEOUT_S" qemu-system-x86_64 "${accel[@]}" \
		-m "$MEMORY" -smp 2 -nographic -no-reboot -nic none "${bios[@]}" \
		-kernel "$kernel" -initrd "$RUN/initrd.cpio" \
		-drive "file=$disk,format=raw,if=virtio,cache=unsafe,discard=unmap" "${extra[@]}" \
		-append "$append" </dev/null 2>&1 |
		tee "$logf"
	local st=("${PIPESTATUS[@]}")
	set -e
	local qrc="${st[0]}"
	B_ELAPSED=$((SECONDS - t0))
	if [ ! -f "$logf" ]; then
		echo "run.sh: $RUN disappeared during the run (someone removed it?)" >&2
		B_SUMMARY="VM ($mode, kernel $KVER): no result: run directory removed"
		return 3
	fi
	tr -d '\r' <"$logf" >"$logf.clean"
	local sentinel reboot
	sentinel="$(grep -a '^THINCTL-VM-EXIT=' "$logf.clean" | tail -1 | cut -d= -f2)"
	reboot="$(grep -a '^THINCTL-VM-REBOOT=' "$logf.clean" | tail -1 | cut -d= -f2)"
	if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
		echo "run.sh: KILLED the $mode guest after ${TIMEOUT_S}s (--timeout $TIMEOUT): it did not power off in time (hung test or guest)" >&2
		local last
		last="$(grep -a -E '^=== RUN (binary|  )' "$logf.clean" | tail -2 | sed 's/^=== RUN *//' | tr '\n' ' ')"
		[ -z "$last" ] || echo "run.sh: last started: $last" >&2
		rc=124
	elif [ -n "$reboot" ] && [ -z "$sentinel" ]; then
		# The guest cut its own power (sysrq b; -no-reboot makes qemu exit).
		B_REBOOT=1
		rc="$reboot"
	elif [ -z "$sentinel" ]; then
		echo "run.sh: the $mode guest stopped without reporting a result (qemu exit $qrc; init crashed or kernel panicked?)" >&2
		rc=3
	else
		rc="$sentinel"
	fi
	local summary counts
	summary="$(grep -a '^VM (' "$logf.clean" | tail -1 || true)"
	counts="$(grep -a '^THINCTL-VM-COUNTS=' "$logf.clean" | tail -1 | cut -d= -f2)"
	if [ -z "$summary" ]; then
		# The guest never got to its summary: count what the console shows.
		counts="$(count_results "$logf.clean")"
		local p f s
		read -r p f s <<<"$counts"
		[ "$rc" = 0 ] || f=$((f + 1)) # the run itself failed
		counts="$p $f $s"
		summary="$(summary_line "$mode" "$KVER" "$p" "$f" "$s") (incomplete: exit $rc)"
	fi
	B_SUMMARY="$summary" B_COUNTS="$counts"
	B_FAILED="$(failed_tests "$logf.clean")"
	return "$rc"
}

# boot MODE boots the guest for MODE; with --max-boots N, again (on the same
# state disk) each time the guest cut its power and asked for another boot,
# at most N times. It adds one line to SUMMARIES and the counts to the totals.
boot() {
	local mode="$1" k=1 rc=0 final=0 state="" t0=$SECONDS
	local p=0 f=0 s=0 bp bf bs failed=""
	if [ -n "$STATE_DISK" ]; then
		state="$STATE_DISK"
	elif [ "$MAX_BOOTS" -gt 1 ]; then
		state="$RUN/state-$mode.img"
		rm -f "$state"
	fi
	[ -z "$state" ] || [ -e "$state" ] || truncate -s 2G "$state"
	while :; do
		rc=0
		boot_once "$mode" "$k" "$state" || rc=$?
		if [ "$rc" = 3 ] && { [ -n "$state" ] || [ "$MAX_BOOTS" -gt 1 ]; } && ! grep -q -a '^=== thinctl VM: ' "$B_LOG.clean"; then
			# The kernel died before init ran: nothing touched the state
			# disk, so the boot can be tried once more.
			echo "run.sh: boot $k ($mode) never reached init; trying it once more" >&2
			rc=0
			boot_once "$mode" "$k" "$state" || rc=$?
		fi
		[ "$rc" = 0 ] || final="$rc"
		[ -z "$B_FAILED" ] || failed="${failed:+$failed, }$B_FAILED"
		if [ -n "$B_COUNTS" ]; then
			read -r bp bf bs <<<"$B_COUNTS"
			p=$((p + bp)) f=$((f + bf)) s=$((s + bs))
		fi
		[ "$B_REBOOT" = 1 ] || break
		if [ "$k" -ge "$MAX_BOOTS" ]; then
			echo "run.sh: the $mode guest cut its power and asked for boot $((k + 1)), but --max-boots is $MAX_BOOTS" >&2
			final=1 f=$((f + 1))
			break
		fi
		echo "run.sh: boot $k ($mode) cut its power (status $rc, ${B_ELAPSED}s): ${B_SUMMARY#VM ($mode, kernel $KVER): }; booting again on the same state disk" >&2
		k=$((k + 1))
	done
	if [ "$k" -eq 1 ]; then
		SUMMARIES+=("$B_SUMMARY (boot+run ${B_ELAPSED}s)")
	elif [ -n "$SCRIPT" ]; then
		SUMMARIES+=("$B_SUMMARY (last of $k boots, boot+run $((SECONDS - t0))s)")
	else
		SUMMARIES+=("$(summary_line "$mode" "$KVER" "$p" "$f" "$s") ($k boots, boot+run $((SECONDS - t0))s)")
	fi
	# Name what failed: CI keeps only the end of the transcript.
	[ -z "$failed" ] || SUMMARIES+=("VM ($mode) failed: $failed")
	TOTAL_P=$((TOTAL_P + p)) TOTAL_F=$((TOTAL_F + f)) TOTAL_S=$((TOTAL_S + s))
	return "$final"
}

cleanup() {
	rm -f "$BUILDROOT/.base.$$.cpio"
	if [ -n "${RUN:-}" ] && [ -d "$RUN" ]; then
		if [ "$KEEP" = 1 ]; then
			rm -f "$RUN"/scratch-*.img
			log "kept $RUN"
		else
			rm -rf "$RUN"
		fi
	fi
}
trap cleanup EXIT

T_START=$SECONDS
setup
build_run
log "prepared in $((SECONDS - T_START))s"
final=0
for mode in "${MODES[@]}"; do
	boot "$mode" || final=$?
done
echo
echo "=== VM summary ==="
for s in "${SUMMARIES[@]}"; do echo "$s"; done
if [ ${#BUILD_FAILED[@]} -gt 0 ]; then
	echo "VM: test build failed for ${BUILD_FAILED[*]}: those tests did not run"
	TOTAL_F=$((TOTAL_F + ${#BUILD_FAILED[@]}))
	final=1
fi
if [ -z "$SCRIPT" ]; then
	echo "VM: $TOTAL_P passed, $TOTAL_F failed, $TOTAL_S skipped"
fi
exit "$final"

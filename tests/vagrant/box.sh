#!/usr/bin/env bash
# tests/vagrant/box.sh: build (or find in the cache) the Vagrant box that
# `make test-vagrant` boots: Debian bookworm from Debian's packages, for the
# libvirt provider, with the kernel and initramfs inside the box for
# vagrant-libvirt's direct kernel boot (no boot loader, no partition table).
#
# It prints the path of the .box file on its last line of stdout. The box is
# kept in $THINCTL_VAGRANT_CACHE (default /var/cache/thinctl/vagrant), under a
# name that hashes every input (this script, the package list, the suite, the
# mirror, Vagrant's insecure key), so a fresh clone on the same machine finds
# it and a changed input builds a new one. See tests/vagrant/README.md.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${THINCTL_VAGRANT_CACHE:-/var/cache/thinctl/vagrant}"
SUITE="${THINCTL_VAGRANT_SUITE:-bookworm}"
# The mirror the host's apt uses (deb822 or one-line sources), else Debian's.
host_mirror() {
	local m
	m="$(grep -h -s -E '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -1)"
	[ -n "$m" ] || m="$(grep -h -s -E '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
		awk '{for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; exit}}' | grep -v security | head -1)"
	echo "${m:-http://deb.debian.org/debian}"
}
MIRROR="${THINCTL_VAGRANT_MIRROR:-$(host_mirror)}"
DISK_GB=8

# What the guest has: a bootable Debian with systemd and udev, ssh for
# Vagrant, and the programs thinctl's integration tests use as oracles.
PACKAGES=(linux-image-amd64 initramfs-tools systemd systemd-sysv udev dbus kmod
	openssh-server sudo rsync iproute2 dmsetup thin-provisioning-tools e2fsprogs xfsprogs util-linux)

die() { echo "box.sh: $*" >&2; exit 2; }
log() { echo "box.sh: $*" >&2; }

[ "$(id -u)" -eq 0 ] || die "run as root (debootstrap, chroot)"
for t in debootstrap mke2fs qemu-img; do
	command -v "$t" >/dev/null || die "$t is missing (make test-vagrant installs debootstrap, e2fsprogs, qemu-utils)"
done

KEY="$(ls /usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub 2>/dev/null | tail -1)"
[ -n "$KEY" ] || KEY="$(find /usr -path '*vagrant*/keys/vagrant.pub' 2>/dev/null | head -1)"
[ -n "$KEY" ] || die "Vagrant's insecure public key (keys/vagrant.pub of the vagrant package) not found: apt-get install vagrant"

HASH="$( {
	cat "${BASH_SOURCE[0]}"
	echo "$SUITE $MIRROR $DISK_GB"
	declare -p PACKAGES
	cat "$KEY"
} | sha256sum | cut -c1-16)"
NAME="thinctl-$SUITE-$HASH"
BOX="$CACHE/$NAME.box"

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9
if [ -f "$BOX" ]; then
	log "cached: $BOX ($(cat "$CACHE/$NAME.info" 2>/dev/null))"
	echo "$BOX"
	exit 0
fi

T0=$SECONDS
WORK="$(mktemp -d "$CACHE/build.XXXXXX")"
ROOTFS="$WORK/rootfs"
cleanup() {
	local m
	# Unmount whatever debootstrap or the chroot steps left mounted.
	for m in $(awk -v r="$ROOTFS/" 'index($2, r) == 1 {print $2}' /proc/mounts | sort -r); do
		umount -l "$m" 2>/dev/null || true
	done
	rm -rf "$WORK"
}
trap cleanup EXIT

# 1. The root filesystem. debootstrap picks the first of alternatives and
# cannot resolve virtual packages, so everything is named explicitly.
log "debootstrap $SUITE from $MIRROR (${PACKAGES[*]})"
mkdir -p "$WORK/debs"
# The initramfs holds only what finds the root disk: it is built while the
# kernel package installs, so the configuration goes in before debootstrap's
# second stage runs.
mkdir -p "$ROOTFS/etc/initramfs-tools/conf.d"
cat >"$ROOTFS/etc/initramfs-tools/conf.d/thinctl.conf" <<'EOF'
# thinctl's Vagrant box boots from virtio (tests/vagrant/box.sh).
MODULES=list
COMPRESS=gzip
EOF
mkdir -p "$ROOTFS/usr/share/initramfs-tools/modules.d"
printf '%s\n' virtio_pci virtio_blk ext4 >"$ROOTFS/usr/share/initramfs-tools/modules.d/thinctl"
debootstrap --variant=minbase --include="$(
	IFS=,
	echo "${PACKAGES[*]}"
)" "$SUITE" "$ROOTFS" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 || {
	tail -30 "$WORK/debootstrap.log" >&2
	tail -30 "$ROOTFS/debootstrap/debootstrap.log" >&2 2>/dev/null || true
	die "debootstrap failed"
}
log "debootstrap done in $((SECONDS - T0))s"

# 2. Configuration: root on /dev/vda (the whole disk, no partitions),
# DHCP on the first NIC with systemd-networkd, user vagrant with Vagrant's
# insecure key and password-less sudo, nothing that waits or phones out.
echo "thinctl-vagrant" >"$ROOTFS/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 thinctl-vagrant\n' >"$ROOTFS/etc/hosts"
echo '/dev/vda / ext4 defaults,errors=remount-ro 0 1' >"$ROOTFS/etc/fstab"
cat >"$ROOTFS/etc/systemd/network/80-vagrant.network" <<'EOF'
[Match]
Name=en* eth*

[Network]
DHCP=ipv4
EOF
in_root() { chroot "$ROOTFS" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }
in_root systemctl enable systemd-networkd.service >/dev/null 2>&1
in_root systemctl mask systemd-networkd-wait-online.service apt-daily.timer apt-daily-upgrade.timer \
	e2scrub_all.timer e2scrub_reap.service fstrim.timer >/dev/null 2>&1 || true
in_root useradd -m -s /bin/bash -U vagrant
echo 'vagrant:vagrant' | in_root chpasswd
echo 'root:vagrant' | in_root chpasswd
echo 'vagrant ALL=(ALL) NOPASSWD: ALL' >"$ROOTFS/etc/sudoers.d/vagrant"
chmod 0440 "$ROOTFS/etc/sudoers.d/vagrant"
install -d -m 0700 "$ROOTFS/home/vagrant/.ssh"
install -m 0600 "$KEY" "$ROOTFS/home/vagrant/.ssh/authorized_keys"
in_root chown -R vagrant:vagrant /home/vagrant/.ssh
echo 'UseDNS no' >"$ROOTFS/etc/ssh/sshd_config.d/vagrant.conf"
# The modules thinctl needs, loaded at boot.
printf '%s\n' dm_thin_pool dm_zero loop overlay >"$ROOTFS/etc/modules-load.d/thinctl.conf"

KVER="$(ls "$ROOTFS/lib/modules" | sort -V | tail -1)"
[ -n "$KVER" ] && [ -f "$ROOTFS/boot/vmlinuz-$KVER" ] || die "no kernel in the root filesystem"
[ -f "$ROOTFS/boot/initrd.img-$KVER" ] || die "no initramfs for $KVER"

# 3. The box: kernel and initramfs beside the disk, a Vagrantfile that boots
# them directly, and the root filesystem as a whole-disk ext4 image (mke2fs
# -d fills it from the directory: no loop device, no mount).
BOXDIR="$WORK/box"
mkdir -p "$BOXDIR"
cp "$ROOTFS/boot/vmlinuz-$KVER" "$BOXDIR/vmlinuz"
cp "$ROOTFS/boot/initrd.img-$KVER" "$BOXDIR/initrd.img"
in_root apt-get clean
rm -rf "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* \
	"$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/log/*.log "$ROOTFS"/debootstrap
for m in $(awk -v r="$ROOTFS/" 'index($2, r) == 1 {print $2}' /proc/mounts | sort -r); do umount "$m"; done
truncate -s "${DISK_GB}G" "$WORK/disk.raw"
mke2fs -q -F -t ext4 -L thinctl-root -d "$ROOTFS" "$WORK/disk.raw"
qemu-img convert -f raw -O qcow2 "$WORK/disk.raw" "$BOXDIR/box.img"
rm -f "$WORK/disk.raw"
printf '{"provider":"libvirt","format":"qcow2","virtual_size":%d}\n' "$DISK_GB" >"$BOXDIR/metadata.json"
cat >"$BOXDIR/Vagrantfile" <<'EOF'
# The box's own Vagrantfile (tests/vagrant/box.sh): direct kernel boot of the
# Debian kernel and initramfs shipped inside the box; the root filesystem is
# the whole virtio disk.
Vagrant.configure("2") do |config|
  config.vm.provider :libvirt do |lv|
    lv.kernel = File.join(__dir__, "vmlinuz")
    lv.initrd = File.join(__dir__, "initrd.img")
    lv.cmd_line = "root=/dev/vda rw console=ttyS0 net.ifnames=0 quiet"
  end
end
EOF
echo "Debian $SUITE, kernel $KVER" >"$BOXDIR/info"
tar -C "$BOXDIR" -cf "$WORK/box.tar" metadata.json Vagrantfile box.img vmlinuz initrd.img info
mv "$WORK/box.tar" "$BOX"
cp "$BOXDIR/info" "$CACHE/$NAME.info"
# Older boxes of this cache go; their inputs changed.
find "$CACHE" -maxdepth 1 -name 'thinctl-*.box' ! -name "$NAME.box" -delete
find "$CACHE" -maxdepth 1 -name 'thinctl-*.info' ! -name "$NAME.info" -delete
log "built $BOX ($(du -h "$BOX" | cut -f1), $(cat "$BOXDIR/info")) in $((SECONDS - T0))s"
echo "$BOX"

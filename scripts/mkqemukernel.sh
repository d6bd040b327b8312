#!/usr/bin/env bash
# Build the QEMU "kernel object" that running-state (machine "qemu")
# snapshots boot and resume: ONE file whose SHA-256 the authority trusts,
# holding Debian's x86-64 kernel and the small initramfs it needs to reach
# the fed base image on a virtio disk (docs/formats.md, "QEMU kernel object").
#
#   scripts/mkqemukernel.sh OUT        build (or take from the cache) and
#                                      copy to OUT; prints OUT's SHA-256
#   scripts/mkqemukernel.sh --cached   print the cached object's path, or
#                                      fail if it is not built (no network)
#
#   "FEDQKRN1"  u64 kernel_size  u64 initrd_size     (big-endian)
#   <kernel: the package's bzImage, as shipped>
#   <initrd: gzip'd newc cpio: busybox-static, /init, virtio + ext4 modules>
#
# The kernel comes from the Debian package linux-image-6.1.0-N-amd64-unsigned
# (QKERNEL_PKG, default: the newest such package apt knows), fetched with
# `apt-get download` into FED_KERNEL_CACHE (default /var/cache/fed) and reused from
# there.  The initramfs is reproducible: fixed times, sorted entries, cpio
# --reproducible, gzip -n; so the same package and busybox give the same
# bytes on every machine.  The object is cached beside the package, keyed
# by this script, the package and busybox; scripts/deps.sh builds it, and
# the tests take it with --cached.
set -euo pipefail
export LC_ALL=C TZ=UTC
umask 022

FIXED_TIME=1672531200	# 2023-01-01T00:00:00Z
BUSYBOX=${BUSYBOX:-/bin/busybox}
CACHE=${FED_KERNEL_CACHE:-/var/cache/fed}/qemu-kernel
# load order: every module after what it depends on (modinfo depends=)
MODULES="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev
virtio_pci virtio_blk failover net_failover virtio_net crc16 mbcache
crc32c_generic jbd2 ext4"

die() { echo "mkqemukernel: $*" >&2; exit 1; }

case ${1:-} in
-h | --help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
'') die "usage: mkqemukernel.sh OUT | --cached" ;;
esac
out=$1
for t in apt-get dpkg-deb cpio gzip sha256sum; do
	command -v "$t" >/dev/null || die "missing $t (scripts/deps.sh)"
done
[ -x "$BUSYBOX" ] || die "missing $BUSYBOX (install busybox-static)"

# The cache entry of the object built from package file deb.
object_of() {
	local key
	key=$({ cat "$0"; basename "$1"; sha256sum <"$BUSYBOX"; } | sha256sum | cut -c1-16)
	echo "$CACHE/object-$key.bin"
}

if [ "$out" = --cached ]; then
	deb=$(ls "$CACHE"/linux-image-6.1.0-*-amd64-unsigned_*.deb 2>/dev/null | sort -V | tail -n 1 || true)
	[ -n "$deb" ] && [ -s "$(object_of "$deb")" ] ||
		die "the QEMU kernel object is not built in $CACHE: run scripts/deps.sh"
	object_of "$deb"
	exit 0
fi

pkg=${QKERNEL_PKG:-}
newest_pkg() {
	apt-cache pkgnames linux-image-6.1.0- |
		grep -E '^linux-image-6\.1\.0-[0-9]+-amd64-unsigned$' |
		sort -t- -k5,5n | tail -n 1
}
if [ -z "$pkg" ]; then
	pkg=$(newest_pkg)
	# a machine whose packages were all installed may have no lists yet
	if [ -z "$pkg" ]; then
		apt-get update -qq >&2 || true
		pkg=$(newest_pkg)
	fi
	[ -n "$pkg" ] || die "no linux-image-6.1.0-*-amd64-unsigned package known to apt (apt-get update?)"
fi
mkdir -p "$CACHE"
deb=$(ls "$CACHE/${pkg}"_*.deb 2>/dev/null | tail -n 1 || true)
if [ -z "$deb" ]; then
	# a mirror's hiccup should not fail a test run: three tries
	for try in 1 2 3; do
		echo "mkqemukernel: downloading $pkg into $CACHE (try $try)" >&2
		(cd "$CACHE" && apt-get download -q "$pkg" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2 || true)
		deb=$(ls "$CACHE/${pkg}"_*.deb 2>/dev/null | tail -n 1 || true)
		[ -n "$deb" ] && break
		[ "$try" = 3 ] || { apt-get update -qq >&2 || true; sleep "$try"; }
	done
	[ -n "$deb" ] || die "apt-get download $pkg failed three times (see the lines above)"
fi

# build_object DEB OUT: the kernel of DEB and a fresh initramfs, one file.
build_object() {
	local deb=$1 out=$2 work kernel moddir root f m ks is
	work=$(mktemp -d "${TMPDIR:-/tmp}/fed-mkqk.XXXXXX")
	# shellcheck disable=SC2064
	trap "rm -rf -- '$work'" EXIT
	dpkg-deb -x "$deb" "$work/deb"
	kernel=$(ls "$work"/deb/boot/vmlinuz-* | head -n 1)
	moddir=$(ls -d "$work"/deb/lib/modules/* | head -n 1)

	root=$work/root
	mkdir -p "$root"/{bin,dev,proc,sys,newroot,lib/modules}
	cp "$BUSYBOX" "$root/bin/busybox"
	ln -s busybox "$root/bin/sh"
	for m in $MODULES; do
		f=$(find "$moddir/kernel" -name "$m.ko" | head -n 1)
		[ -n "$f" ] || die "module $m.ko not in $pkg"
		cp "$f" "$root/lib/modules/$m.ko"
	done
	cat >"$root/init" <<EOF
#!/bin/sh
# fed QEMU initramfs: load virtio and ext4, rename eth0 to vec0 (the name
# the base's /init configures), mount /dev/vda and hand over to its /init.
export PATH=/bin
busybox mount -t proc proc /proc
busybox mount -t sysfs sys /sys
busybox mount -t devtmpfs dev /dev
for m in $(echo $MODULES); do busybox insmod /lib/modules/\$m.ko || echo "fed-initrd: insmod \$m failed"; done
i=0
while [ ! -b /dev/vda ] && [ \$i -lt 200 ]; do busybox usleep 10000; i=\$((i+1)); done
busybox ip link set eth0 name vec0 2>/dev/null
if ! busybox mount -t ext4 -o rw /dev/vda /newroot; then
	echo "fed-initrd: cannot mount /dev/vda"; busybox poweroff -f
fi
busybox umount /proc /sys /dev
exec busybox switch_root /newroot /init
EOF
	chmod 0755 "$root/init"
	find "$root" -exec touch -h -d "@$FIXED_TIME" {} +
	(cd "$root" && find . -mindepth 1 | sort |
		cpio --quiet -o -H newc -R 0:0 --reproducible) | gzip -n -9 >"$work/initrd"

	ks=$(stat -c %s "$kernel")
	is=$(stat -c %s "$work/initrd")
	be64() { printf '%016x' "$1" | sed 's/../\\x&/g'; }
	{
		printf 'FEDQKRN1'
		printf "$(be64 "$ks")"
		printf "$(be64 "$is")"
		cat "$kernel" "$work/initrd"
	} >"$out"
	echo "mkqemukernel: $(basename "$deb"), kernel $ks bytes, initrd $is bytes" >&2
}

obj=$(object_of "$deb")
if [ ! -s "$obj" ]; then
	build_object "$deb" "$obj.partial.$$"
	mv "$obj.partial.$$" "$obj"
fi
cp "$obj" "$out.partial.$$"
mv "$out.partial.$$" "$out"
sha256sum "$out" | cut -c1-64

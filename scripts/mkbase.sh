#!/usr/bin/env bash
# Build fed's standard base root filesystem: an ext2 image holding Debian's
# busybox-static, its applet links, a few /etc files and /init (the contract
# /init follows is in docs/base-image.md).
#
#   scripts/mkbase.sh OUT.img [SIZE_MIB]        (default 64)
#   scripts/mkbase.sh --debian OUT.img [SIZE_MIB]
#       a Debian 12 base instead (default 512 MiB): mmdebstrap minbase with
#       the packages of base/debian/packages, a lean dpkg/apt setup, the same
#       /init; needs the network (Debian's archive) and root
#   scripts/mkbase.sh --debian-cache     build the Debian base and the .debs
#       of base/debian/debs into FED_KERNEL_CACHE (default /var/cache/fed)
#       unless already there (scripts/deps.sh runs it); prints the entry
#   scripts/mkbase.sh --debian-cached    print that entry, or fail
#
# The image is reproducible: the same inputs (busybox binary, e2fsprogs
# version, size) give the same bytes whoever runs it, wherever, whenever,
# with whatever umask, cwd or TMPDIR.  Nothing is mounted; mke2fs -d copies
# a staged directory, then debugfs pins the fields mke2fs takes from the
# staged files that no one can choose (ctime) or that depend on who runs it
# (owner, times).
set -euo pipefail
export LC_ALL=C          # mke2fs -d sorts entries with alphasort (strcoll)
export TZ=UTC
umask 022

# Fixed inputs.  Changing any of them changes the image's hash.
FIXED_TIME=1672531200    # 2023-01-01T00:00:00Z: every timestamp in the image
FS_UUID=6a1f0b6e-5c1d-4f3a-9e2b-0fed0ba5e000
HASH_SEED=6a1f0b6e-5c1d-4f3a-9e2b-0fed0ba5e001
LABEL=fed-base
BUSYBOX=${BUSYBOX:-/bin/busybox}

die() { echo "mkbase: $*" >&2; exit 1; }

here=$(cd "$(dirname -- "$0")/.." && pwd)
CACHE=${FED_KERNEL_CACHE:-/var/cache/fed}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBIAN_SUITE=bookworm

mode=busybox
case ${1:-} in
-h | --help)
	sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'
	exit 0
	;;
--debian) mode=debian; shift ;;
--debian-cache | --debian-cached) mode=${1#--}; shift ;;
-*) die "unknown option $1 (see --help)" ;;
esac

# The Debian cache entry's key: every input of the build, hashed.
debian_key() {
	{
		cat "$here/base/debian/packages" "$here/base/debian/debs" "$0"
		echo "$DEBIAN_SUITE $DEBIAN_MIRROR"
		mmdebstrap --version 2>/dev/null
		mke2fs -V 2>&1 | sed -n 1p    # (head would SIGPIPE mke2fs: pipefail)
	} | sha256sum | cut -c1-16
}
debian_entry_ok() {
	local d=$1
	[ -f "$d/base.img" ] && [ -f "$d/base.sha256" ] && [ -f "$d/manifest" ] &&
		[ "$(sha256sum <"$d/base.img" | cut -c1-64)" = "$(cat "$d/base.sha256")" ]
}
if [ "$mode" = debian-cached ] || [ "$mode" = debian-cache ]; then
	command -v mmdebstrap >/dev/null || die "missing mmdebstrap (scripts/deps.sh installs it)"
	entry=$CACHE/debian/$(debian_key)
	if debian_entry_ok "$entry"; then
		echo "$entry"
		exit 0
	fi
	[ "$mode" = debian-cached ] &&
		die "the Debian base is not built in $entry: run scripts/deps.sh"
	[ "$(id -u)" -eq 0 ] || die "--debian-cache needs root (mmdebstrap --mode=root)"
	mkdir -p "$CACHE/debian"
	tmpentry=$(mktemp -d "$CACHE/debian/.build.XXXXXX")
	trap 'rm -rf -- "$tmpentry"' EXIT
	DEBS_OUT=$tmpentry/debs MANIFEST_OUT=$tmpentry/manifest \
		bash "$0" --debian "$tmpentry/base.img" >"$tmpentry/base.sha256"
	debian_entry_ok "$tmpentry" || die "the new Debian base in $tmpentry fails its own hash"
	rm -rf -- "$entry"
	mv -- "$tmpentry" "$entry"
	trap - EXIT
	echo "$entry"
	exit 0
fi

[ -n "${1:-}" ] || die "usage: mkbase.sh [--debian] OUT.img [SIZE_MIB]"
out=$1
if [ "$mode" = debian ]; then size=${2:-512}; else size=${2:-64}; fi
if ! [[ $size =~ ^[0-9]+$ ]] || [ "$size" -lt 8 ] || [ "$size" -gt 65536 ]; then
	die "SIZE_MIB must be an integer from 8 to 65536, got '$size'"
fi
for t in mke2fs debugfs e2fsck sha256sum; do
	command -v "$t" >/dev/null || die "missing $t (install e2fsprogs)"
done
if [ "$mode" = debian ]; then
	command -v mmdebstrap >/dev/null || die "missing mmdebstrap (scripts/deps.sh installs it)"
	[ "$(id -u)" -eq 0 ] || die "--debian needs root (mmdebstrap --mode=root keeps owners)"
else
	[ -x "$BUSYBOX" ] || die "missing $BUSYBOX (install busybox-static)"
	# A dynamically linked busybox would not run in the image.
	if LC_ALL=C ldd "$BUSYBOX" >/dev/null 2>&1; then
		die "$BUSYBOX is dynamically linked; need busybox-static"
	fi
fi

outdir=$(cd "$(dirname -- "$out")" && pwd) || die "no directory for $out"
out=$outdir/$(basename -- "$out")

work=$(mktemp -d "${TMPDIR:-/tmp}/fed-mkbase.XXXXXX")
partial=$out.partial.$$
trap 'rm -rf -- "$work" "$partial"' EXIT
root=$work/root

# --- the tree -------------------------------------------------------------
# /init, the same text in both bases (the contract: docs/base-image.md).
write_init() {
	cat >"$1" <<'INIT'
#!/bin/sh
# fed base image /init (PID 1).  Contract: docs/base-image.md.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root
umask 022
set -f

mount -t proc proc /proc
mount -t sysfs sysfs /sys
# The kernel may already have mounted devtmpfs on /dev (DEVTMPFS_MOUNT).
grep -q '^[^ ]* /dev devtmpfs ' /proc/mounts || mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
# Plain "\n" line ends on the console (no "\r\n").
stty -opost -echo 2>/dev/null
mount -t tmpfs -o mode=1777 tmpfs /tmp

log() { echo "fed-init: $*"; }

off() {
	sync
	mount -o remount,ro / 2>/dev/null
	sync
	poweroff -f
	sleep 5
	log "poweroff failed"
	exit 1
}

ip_cidr= gw= import= probe= halt=
for w in $(cat /proc/cmdline); do
	case $w in
	fed.ip=*) ip_cidr=${w#fed.ip=} ;;
	fed.gw=*) gw=${w#fed.gw=} ;;
	fed.import=*) import=${w#fed.import=} ;;
	fed.probe=*) probe=${w#fed.probe=} ;;
	fed.halt=*) halt=${w#fed.halt=} ;;
	esac
done

[ -f /etc/hostname ] && hostname -F /etc/hostname
ip link set lo up || log "lo: failed"
if [ -n "$ip_cidr" ]; then
	if ip addr add "$ip_cidr" dev vec0 && ip link set vec0 up; then
		log "vec0 $ip_cidr"
	else
		log "vec0: failed to set $ip_cidr"
	fi
	if [ -n "$gw" ]; then
		ip route add default via "$gw" || log "default route via $gw failed"
	fi
fi

if [ -n "$import" ]; then
	# The owner's files come on a disk of their own (an ext2 image whose
	# files/ is copied over /), never from the host's filesystem.
	case $import in
	/dev/ubd[b-z]) ;;
	*) log "import failed: fed.import=$import is not a /dev/ubd disk"; off ;;
	esac
	if mount -t ext2 -o ro "$import" /mnt; then
		if [ -d /mnt/files ] && cp -a /mnt/files/. /; then
			# cp -a also gave / the files directory's owner and mode.
			chown 0:0 / && chmod 0755 /
			# The owner's setup commands, in the guest, disk on /mnt.
			rc=0
			if [ -f /mnt/setup ]; then
				log "setup running"
				(cd /mnt && DEBIAN_FRONTEND=noninteractive sh -e /mnt/setup) \
					>/tmp/setup.log 2>&1 </dev/null || rc=$?
				sed 's/^/fed-init: setup: /' /tmp/setup.log
			fi
			umount /mnt
			sync
			if [ "$rc" = 0 ]; then
				log "imported"
			else
				log "import failed: setup exited $rc"
			fi
		else
			umount /mnt
			log "import failed: copy from $import"
		fi
	else
		log "import failed: cannot mount $import"
	fi
	off
fi

if [ -n "$probe" ]; then
	if [ -f "$probe" ]; then
		log "probe sha256 $(sha256sum <"$probe" | cut -d' ' -f1) $probe"
		echo "fed-probe-begin $probe"
		cat "$probe"
		[ -n "$(tail -c 1 "$probe")" ] && echo
		echo "fed-probe-end"
	else
		log "probe missing $probe"
	fi
	off
fi

svc=
if [ -f /etc/fed/service ]; then
	sh -c "$(cat /etc/fed/service)" &
	svc=$!
	log "service started"
else
	log "no service"
fi
[ "$halt" = 1 ] && off

if [ -n "$svc" ]; then
	wait "$svc"
	log "service exited $?"
fi
# Stay alive as PID 1; ash reaps every child (orphans too) while it waits.
while :; do
	sleep 2147483647 &
	wait $!
done
INIT
	chmod 0755 "$1"
}

busybox_tree() {
	mkdir "$root"
	cd "$root"
	mkdir -p bin etc/fed proc sys dev tmp mnt root var/www usr
	chmod 0755 bin etc etc/fed proc sys dev mnt var var/www usr .
	chmod 1777 tmp
	chmod 0700 root

	cp -- "$BUSYBOX" bin/busybox
	chmod 0755 bin/busybox
	"$BUSYBOX" --list | while IFS= read -r applet; do
		case $applet in
		busybox | */* | '') continue ;;
		esac
		ln -s busybox "bin/$applet"
	done
	ln -s bin sbin
	ln -s ../bin usr/bin
	ln -s ../bin usr/sbin

	printf 'root:x:0:0:root:/root:/bin/sh\n' >etc/passwd
	printf 'root:x:0:\n' >etc/group
	printf 'fed\n' >etc/hostname
	printf '127.0.0.1\tlocalhost\n::1\tlocalhost\n' >etc/hosts
	chmod 0644 etc/passwd etc/group etc/hostname etc/hosts

	write_init init
}

# mmdebstrap's minbase of Debian 12 with base/debian/packages, a lean dpkg
# (no docs, man pages or locales) and apt (no recommends) that stay in the
# base for whatever an owner installs later, then what /init needs.  With
# DEBS_OUT set, the package sets of base/debian/debs are downloaded (with
# their hard dependencies) into DEBS_OUT/NAME/ from inside the new system.
debian_tree() {
	local pkgs hook=true
	pkgs=$(grep -v -E '^(#|$)' "$here/base/debian/packages" | paste -sd, -)
	if [ -n "${DEBS_OUT:-}" ]; then
		mkdir -p "$DEBS_OUT"
		hook="grep -v -E '^(#|\$)' '$here/base/debian/debs' | while read -r name set; do
			rm -f \"\$1\"/var/cache/apt/archives/*.deb &&
			chroot \"\$1\" apt-get install -d -y -q \$set >/dev/null &&
			mkdir -p '$DEBS_OUT'/\$name &&
			cp \"\$1\"/var/cache/apt/archives/*.deb '$DEBS_OUT'/\$name/ || exit 1
		done; rm -f \"\$1\"/var/cache/apt/archives/*.deb &&
		chown 0:0 \"\$1\"/var/cache/apt/archives/partial"
	fi
	SOURCE_DATE_EPOCH=$FIXED_TIME mmdebstrap --quiet --variant=minbase --mode=root \
		--include="$pkgs" \
		--aptopt='APT::Install-Recommends "false"' \
		--aptopt='APT::Install-Suggests "false"' \
		--dpkgopt='path-exclude=/usr/share/doc/*' \
		--dpkgopt='path-include=/usr/share/doc/*/copyright' \
		--dpkgopt='path-exclude=/usr/share/man/*' \
		--dpkgopt='path-exclude=/usr/share/info/*' \
		--dpkgopt='path-exclude=/usr/share/locale/*' \
		--dpkgopt='path-include=/usr/share/locale/locale.alias' \
		--dpkgopt='path-exclude=/usr/share/lintian/*' \
		--customize-hook="$hook" \
		"$DEBIAN_SUITE" "$root" "$DEBIAN_MIRROR" >"$work/mmdebstrap.log" 2>&1 ||
		{ tail -n 30 "$work/mmdebstrap.log" >&2; die "mmdebstrap failed"; }
	if [ -n "${MANIFEST_OUT:-}" ]; then
		chroot "$root" dpkg-query -W -f='${Package} ${Version} ${Architecture}\n' >"$MANIFEST_OUT"
	fi
	cd "$root"
	# minbase has neither ip (iproute2) nor poweroff (an init system).
	ln -s /bin/busybox usr/sbin/ip
	ln -s /bin/busybox usr/sbin/poweroff
	mkdir -p etc/fed var/www mnt
	chmod 0755 etc/fed var/www mnt
	# Packages installed at import time must not start their daemons (no
	# init system runs; the service is /etc/fed/service): invoke-rc.d asks
	# policy-rc.d, and 101 is "not allowed".
	printf '#!/bin/sh\n# fed: no daemon starts at install time (invoke-rc.d)\nexit 101\n' >usr/sbin/policy-rc.d
	chmod 0755 usr/sbin/policy-rc.d
	rm -f etc/resolv.conf
	printf 'fed\n' >etc/hostname
	# Apache asks the resolver for its own hostname (AH00558 without it).
	printf '127.0.0.1\tlocalhost\n127.0.1.1\tfed\n::1\tlocalhost ip6-localhost ip6-loopback\n' >etc/hosts
	chmod 0644 etc/hostname etc/hosts
	write_init init
}

if [ "$mode" = debian ]; then
	debian_tree
else
	busybox_tree
fi
cd /

# Every source entry gets the same times; ctime is fixed later in the image.
find "$root" -exec touch -h -d "@$FIXED_TIME" {} +

# --- the filesystem -------------------------------------------------------
# Our own mke2fs.conf, so the host's defaults do not matter.
cat >"$work/mke2fs.conf" <<'CONF'
[defaults]
	base_features = sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr
	default_mntopts = acl,user_xattr
	enable_periodic_fsck = 0
	blocksize = 4096
	inode_size = 128
	inode_ratio = 16384
	reserved_ratio = 5.0
	lazy_itable_init = false
[fs_types]
	ext2 = {
		features = none,sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr
	}
CONF

img=$work/base.img
export MKE2FS_CONFIG=$work/mke2fs.conf
export E2FSPROGS_FAKE_TIME=$FIXED_TIME SOURCE_DATE_EPOCH=$FIXED_TIME
mke2fs -q -F -t ext2 -T ext2 -b 4096 -I 128 -i 16384 -m 5 -L "$LABEL" \
	-U "$FS_UUID" \
	-E "hash_seed=$HASH_SEED,root_owner=0:0,no_copy_xattrs,nodiscard" \
	-d "$root" "$img" "${size}M" >"$work/mke2fs.log" 2>&1 ||
	{ cat "$work/mke2fs.log" >&2; die "mke2fs failed"; }

# mke2fs copied ctime (and owner) from the staged files: pin them.
{
	(cd "$root" && find . -mindepth 1 | sed 's|^\.||') | while IFS= read -r p; do
		for f in atime mtime ctime; do
			printf 'sif "%s" %s @%s\n' "$p" "$f" "$FIXED_TIME"
		done
		# The busybox tree is root's; Debian's keeps its packages' owners.
		[ "$mode" = debian ] || printf 'sif "%s" uid 0\nsif "%s" gid 0\n' "$p" "$p"
	done
	for p in '<2>' '<11>'; do   # the root directory and lost+found
		for f in atime mtime ctime; do
			printf 'sif %s %s @%s\n' "$p" "$f" "$FIXED_TIME"
		done
		printf 'sif %s uid 0\nsif %s gid 0\n' "$p" "$p"
	done
} >"$work/fix.cmds"
debugfs -w -f "$work/fix.cmds" "$img" >"$work/debugfs.log" 2>&1 ||
	{ cat "$work/debugfs.log" >&2; die "debugfs failed"; }
if grep -v -E '^(debugfs [0-9.]+ \(.*\)|debugfs: sif .*)$' "$work/debugfs.log" | grep -q .; then
	cat "$work/debugfs.log" >&2
	die "debugfs reported errors"
fi

e2fsck -fn "$img" >"$work/fsck.log" 2>&1 ||
	{ cat "$work/fsck.log" >&2; die "e2fsck found errors in the new image"; }

chmod 0644 "$img"
mv -f -- "$img" "$partial"     # keeps the image sparse across filesystems
mv -f -- "$partial" "$out"
sha256sum "$out" | cut -d' ' -f1

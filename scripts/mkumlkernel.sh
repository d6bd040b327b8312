#!/usr/bin/env bash
# Build fed's User-Mode Linux kernel: Debian's kernel source, Debian's UML
# configuration without modules, hostfs and what a fed guest never uses,
# and the patches that make it boot on every x86-64 host (kernel/uml/).
#
#   scripts/mkumlkernel.sh OUT         build (or take from the cache) and
#                                      copy to OUT; prints OUT's SHA-256
#   scripts/mkumlkernel.sh --cached    print the cached kernel's path, or
#                                      fail if it is not built (no network)
#   scripts/mkumlkernel.sh --key       print the cache key of the inputs
#
# The build is reproducible: fixed build time, user, host and version, and
# source paths mapped away, so the same inputs give the same bytes on any
# machine with the same compiler.  It is cached in FED_KERNEL_CACHE (default
# /var/cache/fed) under uml/<key>, the key a hash of every input: the source
# package and version (kernel/uml/source), both configs, the patches, this
# script, and the compiler and linker versions.  A cold build takes about
# 6 min on 2 cores; a cached one, the time to copy the file.
set -euo pipefail
export LC_ALL=C TZ=UTC
umask 022

here=$(cd "$(dirname -- "$0")/.." && pwd)
kdir=$here/kernel/uml
CACHE=${FED_KERNEL_CACHE:-/var/cache/fed}

die() { echo "mkumlkernel: $*" >&2; exit 1; }
say() { echo "mkumlkernel: $*" >&2; }

# The pinned source: "PACKAGE VERSION" on the one line of kernel/uml/source
# that is not a comment.
read -r src_pkg src_ver < <(grep -v '^#' "$kdir/source")
[ -n "${src_pkg:-}" ] && [ -n "${src_ver:-}" ] || die "kernel/uml/source names no package and version"

patches() { find "$kdir/patches" -name '*.patch' | sort; }

# The key: every input, hashed in a fixed order.
cache_key() {
	{
		echo "$src_pkg $src_ver"
		cat "$kdir/debian-6.1.config" "$kdir/fed.config" "$0"
		patches | while read -r p; do basename "$p"; cat "$p"; done
		gcc --version | head -n 1
		ld --version | head -n 1
	} | sha256sum | cut -c1-16
}

usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; }

case ${1:-} in
-h | --help) usage; exit 0 ;;
'') usage >&2; exit 2 ;;
esac
for t in gcc ld make flex bison bc apt-get dpkg-deb xz patch sha256sum strip; do
	command -v "$t" >/dev/null || die "missing $t (scripts/deps.sh installs it)"
done

key=$(cache_key)
entry=$CACHE/uml/$key

# A cache entry is a directory renamed into place whole: linux, its SHA-256
# in linux.sha256, the resolved config and the build log.  The hash is
# checked each time it is used, so a damaged entry is never handed out.
cached_ok() {
	[ -f "$entry/linux" ] && [ -f "$entry/linux.sha256" ] &&
		[ "$(sha256sum <"$entry/linux" | cut -c1-64)" = "$(cat "$entry/linux.sha256")" ]
}

case $1 in
--key) echo "$key"; exit 0 ;;
--cached)
	cached_ok || die "fed's UML kernel ($key) is not built in $CACHE/uml: run scripts/deps.sh"
	echo "$entry/linux"
	exit 0
	;;
-*) die "unknown option $1 (see --help)" ;;
esac
out=$1

# --- the source package, fetched once into the cache -----------------------
fetch_source() {
	local deb dir=$CACHE/src
	mkdir -p "$dir"
	deb=$(ls "$dir/${src_pkg}_${src_ver//:/%3a}"_*.deb 2>/dev/null | head -n 1 || true)
	[ -n "$deb" ] && { echo "$deb"; return; }
	# A mirror that hiccups should not fail an install: five tries over
	# about a minute, the package lists refreshed between them.
	local try
	for try in 1 2 3 4 5; do
		say "downloading $src_pkg=$src_ver (~150 MB) into $dir (try $try)"
		(cd "$dir" && apt-get download -q "$src_pkg=$src_ver" 2>&1 |
			grep -v '^W: Download is performed unsandboxed' >&2) || true
		deb=$(ls "$dir/${src_pkg}_${src_ver//:/%3a}"_*.deb 2>/dev/null | head -n 1 || true)
		[ -n "$deb" ] && { echo "$deb"; return; }
		apt-get update -qq >&2 || true
		sleep $((try * 3))
	done
	die "apt-get download $src_pkg=$src_ver failed five times (the lines above say why);" \
		"if the archive no longer has this version, put one it has in kernel/uml/source"
}

# --- configuration: Debian's, its modules left out, fed.config over it ----
configure() {
	local src=$1 obj=$2
	# A module of Debian's config is not part of fed's kernel: with
	# MODULES off, Kconfig would build every "=m" in instead.
	sed -E 's/^(CONFIG_[A-Z0-9_]+)=m$/# \1 is not set/' \
		"$kdir/debian-6.1.config" >"$obj/debian-nomodules.config"
	(cd "$src" && KCONFIG_CONFIG=$obj/.config ./scripts/kconfig/merge_config.sh \
		-m -O "$obj" "$obj/debian-nomodules.config" "$kdir/fed.config") >"$obj/merge.log" 2>&1 ||
		{ cat "$obj/merge.log" >&2; die "merge_config failed"; }
	make -s -C "$src" O="$obj" ARCH=um olddefconfig >>"$obj/merge.log" 2>&1 ||
		{ cat "$obj/merge.log" >&2; die "olddefconfig failed"; }
	# Every line of fed.config must hold in the result: a "not set" that
	# some other option selects back on would be a silent way out.
	local opt want got bad=0
	for opt in $(grep -oE '^(# )?CONFIG_[A-Z0-9_]+' "$kdir/fed.config" | sed 's/^# //'); do
		want=$(grep -E "^(# )?$opt[= ]" "$kdir/fed.config")
		got=$(grep -E "^(# )?$opt[= ]" "$obj/.config" || true)
		case $want in
		*" is not set") case $got in *=y | *=m) say "fed.config: $opt is still on"; bad=1 ;; esac ;;
		*) [ "$want" = "$got" ] || { say "fed.config: $want did not hold (got '${got:-nothing}')"; bad=1; } ;;
		esac
	done
	[ $bad = 0 ] || die "the configuration does not say what kernel/uml/fed.config asks"
}

build() {
	local deb work src obj
	deb=$(fetch_source)
	mkdir -p "$CACHE/uml"
	work=$(mktemp -d "$CACHE/uml/.build.XXXXXX")
	# shellcheck disable=SC2064
	trap "rm -rf -- '$work'" EXIT
	say "building $key from $(basename "$deb") in $work"
	dpkg-deb --fsys-tarfile "$deb" |
		tar -x -O --wildcards "./usr/src/$src_pkg.tar.xz" | tar -xJ -C "$work"
	src=$work/$src_pkg
	obj=$work/obj
	mkdir "$obj"
	[ -d "$src" ] || die "$deb holds no /usr/src/$src_pkg.tar.xz tree"
	local p
	for p in $(patches); do
		say "patch $(basename "$p")"
		patch -d "$src" -p1 --forward --fuzz=0 --quiet <"$p" || die "$(basename "$p") does not apply"
	done
	configure "$src" "$obj"
	local t0=$SECONDS
	# The build's own clock, user, host and paths are all fixed.
	make -C "$src" O="$obj" ARCH=um -j"$(nproc)" \
		KBUILD_BUILD_TIMESTAMP='Thu Jan  1 00:00:00 UTC 2026' \
		KBUILD_BUILD_USER=fed KBUILD_BUILD_HOST=fed KBUILD_BUILD_VERSION=1 \
		KCFLAGS="-ffile-prefix-map=$src/= -ffile-prefix-map=$obj/=" \
		linux >"$obj/build.log" 2>&1 ||
		{ tail -n 40 "$obj/build.log" >&2; die "the kernel build failed (log above)"; }
	say "built in $((SECONDS - t0)) s"
	mkdir "$work/entry"
	strip -o "$work/entry/linux" "$obj/linux"
	chmod 0755 "$work/entry/linux"
	sha256sum <"$work/entry/linux" | cut -c1-64 >"$work/entry/linux.sha256"
	cp "$obj/.config" "$work/entry/config"
	cp "$obj/build.log" "$work/entry/build.log"
	rm -rf -- "$entry"
	mv "$work/entry" "$entry"
}

cached_ok || build
mkdir -p "$(dirname -- "$out")"
cp "$entry/linux" "$out.partial.$$"
mv "$out.partial.$$" "$out"
say "$src_pkg $src_ver, key $key, $(stat -c %s "$out") bytes"
sha256sum <"$out" | cut -c1-64

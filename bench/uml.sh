#!/usr/bin/env bash
# Benchmark: fed's UML kernel (scripts/mkumlkernel.sh) against Debian's
# /usr/bin/linux.uml, side by side in one run:
#
#   boot     power on to /init and power off again (the base's fed.probe),
#            RUNS each (default 10), alternating kernels, median and range;
#            at 64 MiB for both, and at 48 MiB for fed's
#   size     bytes of each file, and of its code and data (size(1))
#   build    the cached build (scripts/mkumlkernel.sh with a warm cache)
#
#   bench/uml.sh [--builds]
#
# --builds also makes two cold builds, each in a clean FED_KERNEL_CACHE of
# its own (the source package copied in, so no download is timed), and
# prints their times and hashes: reproducibility.  About 12 min on 2 cores.
#
# Debian's kernel does not boot on a CPU with AMX (the panic fed's patch
# fixes); there its line says so and only fed's is measured.
source "$(dirname "$0")/../tests/e2e/lib.sh"
source "$(dirname "$0")/lib.sh"

RUNS=${RUNS:-10}
DEBIAN=/usr/bin/linux.uml
need_uml
mktempdir d
bash "$ROOT/scripts/mkbase.sh" "$d/base.img" >/dev/null

amx=no
grep -qw amx_tile /proc/cpuinfo && amx=yes
echo "host: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores, AMX: $amx"

# boot_once KERNEL MEM: seconds from exec to power-off, or "fail"
boot_once() {
	local t0 t1
	rm -f "$d/p.cow"
	t0=$(now)
	timeout -k 5 60 "$1" "ubd0=$d/p.cow,$d/base.img" root=/dev/ubda rw \
		init=/init "mem=$2" con=null con0=null,fd:1 quiet \
		fed.probe=/etc/hostname 2>&1 | cat >"$d/boot.log"
	t1=$(now)
	if grep -aq '^fed-probe-end$' "$d/boot.log"; then
		echo "$t1 - $t0" | bc
	else
		echo fail
	fi
}

declare -A runs
kernels=("fed:$UML:64M" "fed:$UML:48M")
[ -x "$DEBIAN" ] && kernels+=("debian:$DEBIAN:64M")
for ((i = 1; i <= RUNS; i++)); do
	for k in "${kernels[@]}"; do
		IFS=: read -r name path mem <<<"$k"
		runs[$name-$mem]+="$(boot_once "$path" "$mem") "
	done
done

summary() {	# summary "t1 t2 ...": median [min-max], or why not
	local all=$1 ok
	if grep -q fail <<<"$all"; then
		echo "did not boot ($(grep -o fail <<<"$all" | wc -l) of $RUNS runs failed)"
		return
	fi
	ok=$(tr ' ' '\n' <<<"$all" | sed '/^$/d')
	printf '%.3f s [%.3f-%.3f]' "$(median <<<"$ok")" \
		"$(sort -g <<<"$ok" | head -n 1)" "$(sort -g <<<"$ok" | tail -n 1)"
}
echo
echo "boot to /init and power-off, median of $RUNS [min-max]:"
printf '  %-28s %s\n' "fed's kernel, 64 MiB" "$(summary "${runs[fed-64M]}")"
printf '  %-28s %s\n' "fed's kernel, 48 MiB" "$(summary "${runs[fed-48M]}")"
if [ -x "$DEBIAN" ]; then
	printf '  %-28s %s\n' "Debian's linux.uml, 64 MiB" "$(summary "${runs[debian-64M]}")"
else
	printf '  %-28s %s\n' "Debian's linux.uml" "not installed"
fi

echo
echo "size (file; text + data + bss):"
for k in "fed's kernel:$UML" "Debian's linux.uml:$DEBIAN"; do
	IFS=: read -r name path <<<"$k"
	[ -e "$path" ] || continue
	printf '  %-28s %6.1f MB; %s\n' "$name" \
		"$(echo "$(stat -L -c %s "$path") / 1000000" | bc -l)" \
		"$(size "$path" | awk 'NR==2 {printf "%.1f + %.1f + %.1f MB", $1/1e6, $2/1e6, $3/1e6}')"
done

echo
t0=$(now)
bash "$ROOT/scripts/mkumlkernel.sh" "$d/cached" >/dev/null 2>&1
echo "cached build (scripts/mkumlkernel.sh, warm cache): $(printf '%.2f' "$(echo "$(now) - $t0" | bc)") s"

[ "${1:-}" = --builds ] || exit 0
cache=${FED_KERNEL_CACHE:-/var/cache/fed}
for b in 1 2; do
	mkdir -p "$d/cache$b/src"
	cp "$cache"/src/*.deb "$d/cache$b/src/"
	t0=$(now)
	h=$(FED_KERNEL_CACHE=$d/cache$b bash "$ROOT/scripts/mkumlkernel.sh" "$d/k$b" 2>"$d/build$b.log") ||
		{ echo "cold build $b failed:"; tail -n 20 "$d/build$b.log"; exit 1; }
	echo "cold build $b (clean cache, $(nproc) cores): $(printf '%.0f' "$(echo "$(now) - $t0" | bc)") s, sha256 $h"
	rm -rf "$d/cache$b"
done
if cmp -s "$d/k1" "$d/k2"; then
	echo "reproducible: the two cold builds are byte for byte the same"
else
	echo "NOT reproducible: the two cold builds differ"
	exit 1
fi

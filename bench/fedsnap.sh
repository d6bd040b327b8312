#!/usr/bin/env bash
# Benchmark: .fedsnap pack / verify / unpack throughput, side by side with
# sha256sum of the same bytes in the same run, and the delta's size next to
# the base's.  coreutils' sha256sum is portable C; libgcrypt (so fed) uses
# the CPU's SHA extensions, as `openssl dgst` does: both are shown.
#
#   bench/fedsnap.sh [CHANGED_MIB]     (default 192)
#
# A 512 MiB base from scripts/mkbase.sh; a real UML guest imports
# CHANGED_MIB of files (half random, half text) into its COW; then each
# step runs 3 times and the median is printed.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
FED=$ROOT/bin/fed
MIB=${1:-192}
work=$(mktemp -d "${TMPDIR:-/tmp}/fed-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
UML=$(bash "$ROOT/scripts/mkumlkernel.sh" --cached) || exit 1

now() { date +%s.%N; }
# median of 3 runs of "$@", in seconds
median3() {
	local t=() i s
	for i in 1 2 3; do
		s=$(now)
		"$@" >/dev/null 2>&1
		t+=("$(echo "$(now) - $s" | bc -l)")
	done
	printf '%s\n' "${t[@]}" | sort -g | sed -n 2p
}
rate() { echo "scale=1; $1 / 1048576 / $2" | bc -l; }

echo "building a 512 MiB base and a guest that writes $MIB MiB..."
bash "$ROOT/scripts/mkbase.sh" "$work/base.img" 512 >/dev/null
mkdir -p "$work/import/files/srv"
head -c $((MIB / 2))M /dev/urandom >"$work/import/files/srv/random.bin"
{ seq 1 100000000 || true; } | head -c $((MIB / 2))M >"$work/import/files/srv/text.txt"
kib=$(du -sk --apparent-size "$work/import" | cut -f1)
mke2fs -q -F -t ext2 -m 0 -E root_owner=0:0 -d "$work/import" \
	"$work/import.img" "$((kib + kib / 4 + 16384))k" >/dev/null
rm -rf "$work/import"
timeout 300 "$UML" "ubd0=$work/web.cow,$work/base.img" "ubd1r=$work/import.img" \
	root=/dev/ubda rw init=/init mem=256M con=null con0=null,fd:1 quiet \
	fed.import=/dev/ubdb 2>&1 | cat >"$work/import.log"
rm -f "$work/import.img"
if ! grep -q 'fed-init: imported' "$work/import.log"; then
	echo "the guest did not import the files:" >&2
	grep -v '^\s*\[<' "$work/import.log" | tail -n 15 >&2
	exit 1
fi
"$FED" keygen -o "$work/k" >/dev/null
kh=$(sha256sum <"$UML" | cut -c1-64)

pack() {
	rm -f "$work/web.fedsnap"
	"$FED" snapshot pack --base "$work/base.img" --cow "$work/web.cow" \
		--service bench.example.org:80 --guest-port 80 \
		--kernel-hash "$kh" --key "$work/k" -o "$work/web.fedsnap"
}
unpack() {
	rm -f "$work/u.cow"
	"$FED" snapshot unpack "$work/web.fedsnap" --base "$work/base.img" \
		-o "$work/u.cow"
}
t_pack=$(median3 pack)
pack
changed=$("$FED" snapshot pack --base "$work/base.img" --cow "$work/web.cow" \
	--service bench.example.org:80 --guest-port 80 --kernel-hash "$kh" \
	--key "$work/k" -o "$work/web2.fedsnap" --json |
	sed -E 's/.*"changed_bytes":([0-9]+).*/\1/')
snap=$(stat -c %s "$work/web.fedsnap")
base=$(stat -c %s "$work/base.img")
t_verify=$(median3 "$FED" snapshot verify "$work/web.fedsnap")
t_unpack=$(median3 unpack)
t_sum_snap=$(median3 sha256sum "$work/web.fedsnap")
t_ossl_snap=$(median3 openssl dgst -sha256 "$work/web.fedsnap")
cat "$work/files/srv/"* >"$work/changed.bin"
t_sum_changed=$(median3 sha256sum "$work/changed.bin")
t_gzip=$(median3 sh -c "gzip -6 -c '$work/changed.bin' >/dev/null")
t_sum_base=$(median3 sha256sum "$work/base.img")

printf '\n%-44s %10s %10s\n' "step (median of 3)" "seconds" "MiB/s"
printf '%-44s %10.3f %10s\n' "fed snapshot pack ($((changed >> 20)) MiB changed)" \
	"$t_pack" "$(rate "$changed" "$t_pack")"
printf '%-44s %10.3f %10s\n' "  baseline: gzip -6 of the files written" \
	"$t_gzip" "$(rate "$changed" "$t_gzip")"
printf '%-44s %10.3f %10s\n' "  baseline: sha256sum of the files written" \
	"$t_sum_changed" "$(rate "$changed" "$t_sum_changed")"
printf '%-44s %10.3f %10s\n' "  part of it: sha256sum of the 512 MiB base" \
	"$t_sum_base" "$(rate "$base" "$t_sum_base")"
printf '%-44s %10.3f %10s\n' "fed snapshot verify ($((snap >> 20)) MiB snapshot)" \
	"$t_verify" "$(rate "$snap" "$t_verify")"
printf '%-44s %10.3f %10s\n' "  baseline: sha256sum of the snapshot" \
	"$t_sum_snap" "$(rate "$snap" "$t_sum_snap")"
printf '%-44s %10.3f %10s\n' "  baseline: openssl dgst -sha256 (SHA-NI)" \
	"$t_ossl_snap" "$(rate "$snap" "$t_ossl_snap")"
printf '%-44s %10.3f %10s\n' "fed snapshot unpack" "$t_unpack" \
	"$(rate "$changed" "$t_unpack")"
printf '\ndelta %s bytes for a %s-byte base (%s%%); %s bytes of blocks changed\n' \
	"$snap" "$base" "$(echo "scale=2; 100 * $snap / $base" | bc -l)" "$changed"

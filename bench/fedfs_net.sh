#!/usr/bin/env bash
# Benchmark fedfs under network faults, in a network namespace of its own,
# this tree's fedfs side by side with a baseline fedfs (default: the
# binary of /work/main, copied at the start; FEDFS_BASELINE=path to pick
# another, or "none"), in the same run, against this tree's authority:
#
#   (a) seconds from a cold read to EIO when every listed source drops
#       packets (nftables), against the number of sources: 1, 2, 4, 8
#   (b) MB/s of a peer's cold read of a 32 MiB base whose only source is
#       the owner, without and with a flood of 16 addresses x 64 idle
#       connections to the owner's object server
#
#   bench/fedfs_net.sh        (as root)
set -Eeuo pipefail
trap 'echo "bench/fedfs_net.sh: line $LINENO failed: $BASH_COMMAND" >&2' ERR
source "$(dirname "$0")/../tests/e2e/lib.sh"
FLOOD=$ROOT/${BUILD:-build}/tests/tools/flood
set +u
if [ -z "${FED_NET_NS:-}" ]; then
	[ "$(id -u)" = 0 ] || { echo "bench/fedfs_net.sh: needs root" >&2; exit 1; }
	base=${FEDFS_BASELINE:-/work/main/bin/fedfs}
	keep=$(mktemp -d)
	[ "$base" = none ] || cp "$base" "$keep/fedfs"
	ns=fedbenchnet$$
	ip netns add "$ns"
	on_exit "rm -rf '$keep'; ip netns del $ns"
	on_exit "for p in \$(ip netns pids $ns); do kill -9 \$p; done; sleep 0.2"
	ip -n "$ns" link set lo up
	FED_NET_NS=$ns FED_BASELINE_DIR=$([ "$base" = none ] || echo "$keep") \
		nsenter --net="/run/netns/$ns" bash "$0"
	exit $?
fi
set -u
MiB=1048576
mktempdir d
nft add table inet fedbench
nft add chain inet fedbench out '{ type filter hook output priority 0; }'
drop() { for a in "$@"; do nft add rule inet fedbench out ip daddr "$a" drop; done; }
undrop() { nft flush chain inet fedbench out; }
host() { echo "${1%:*}"; }
now() { date +%s.%N; }
secs() { echo "$(now) - $1" | bc -l; }

start_authority "$d/auth" >/dev/null
# bases of their own for each cluster: the other's peers would be sources
for tag in old new; do
	for b in b1 b2 b4 b8; do
		head -c $((4 * MiB)) /dev/urandom >"$d/$tag$b.img"
	done
	head -c $((32 * MiB)) /dev/urandom >"$d/${tag}big.img"
	for b in b1 b2 b4 b8 big; do
		"$FED" trust add "$d/$tag$b.img" --kind base --authority "$AUTH" \
			--key "$ADMIN_KEY" >/dev/null
	done
done
sum() { sha256sum <"$d/$tag$1.img" | cut -c1-64; }

# cluster TAG NET BINDIR: an owner and 7 holders with the fedfs in BINDIR
# (addresses 127.NET.0.x); fills EIO_<TAG>_<n> and MBS_<TAG>_{calm,flood}
cluster() {
	local tag=$1 net=$2 bindir=$3 n i t0 hs=() m r src
	local BINDIR=$bindir
	start_fedfs "o$tag" "127.$net.0.2" "$d" >/dev/null
	eval "local mo=\$MNT_o$tag so=\$SERVE_o$tag"
	for b in b1 b2 b4 b8 big; do cp "$d/$tag$b.img" "$mo/publish/"; done
	hs=("$(host "$so")")
	for i in 1 2 3 4 5 6 7; do
		start_fedfs "h$tag$i" "127.$net.0.$((10 + i))" "$d" >/dev/null
		eval "m=\$MNT_h$tag$i; src=\$SERVE_h$tag$i"
		hs+=("$(host "$src")")
		for b in b2 b4 b8; do
			case $b$i in b21|b4[123]|b8*) ;; *) continue ;; esac
			wait_for 10 test -e "$m/bases/$(sum $b)"
			cat "$m/bases/$(sum $b)" >/dev/null
		done
	done
	for n in 1 2 4 8; do
		start_fedfs "r$tag$n" "127.$net.0.$((30 + n))" "$d" >/dev/null
		eval "m=\$MNT_r$tag$n"
		wait_for 10 test -e "$m/bases/$(sum b$n)"
		wait_for 10 test "$(curl -fsS "$AUTH/v1/sources/$(sum b$n)" |
			jq '.sources | length')" -ge "$n"
		drop "${hs[@]}"
		t0=$(now)
		dd if="$m/bases/$(sum b$n)" of=/dev/null bs=1M count=1 skip=1 \
			2>"$d/dd.$tag.$n" || true
		printf -v "EIO_${tag}_$n" '%.1f' "$(secs "$t0")"
		undrop
	done
	for r in calm flood; do
		if [ $r = flood ]; then
			"$FLOOD" 127.99.1. "$(host "$so")" "${so##*:}" >"$d/flood$tag" 2>&1 &
			fpid=$!
			on_exit "kill $fpid"
			wait_for 60 grep -q ready "$d/flood$tag"
		fi
		start_fedfs "c$tag$r" "127.$net.0.$((50 + ${#r}))" "$d" >/dev/null ||
			{ printf -v "MBS_${tag}_$r" 'no mount'; continue; }
		eval "m=\$MNT_c$tag$r"
		wait_for 10 test -e "$m/bases/$(sum big)"
		t0=$(now)
		if timeout 60 cmp "$m/bases/$(sum big)" "$d/${tag}big.img" 2>/dev/null; then
			printf -v "MBS_${tag}_$r" '%.0f' \
				"$(echo "32 * 1.048576 / $(secs "$t0")" | bc -l)"
		else
			printf -v "MBS_${tag}_$r" 'EIO'
		fi
		[ $r = flood ] && kill "$fpid"
	done
}

# the baseline first: nothing of this tree's runs meanwhile
if [ -n "${FED_BASELINE_DIR:-}" ]; then
	echo "the baseline fedfs..."
	cluster old 2 "$FED_BASELINE_DIR"
fi
echo "this tree's fedfs..."
[ -n "${BENCH_BASELINE_ONLY:-}" ] || cluster new 1 "$BINDIR"
v() { local x="EIO_${1}_$2"; echo "${!x:--}"; }
w() { local x="MBS_${1}_$2"; echo "${!x:--}"; }
printf '\n%-44s %10s %10s\n' "" baseline "this tree"
for n in 1 2 4 8; do
	printf '%-44s %9ss %9ss\n' "EIO on a dead network, $n source(s)" \
		"$(v old $n)" "$(v new $n)"
done
printf '%-44s %10s %10s\n' "cold read from the owner, MB/s" "$(w old calm)" "$(w new calm)"
printf '%-44s %10s %10s\n' "  same, owner flooded (16 x 64 idle conns)" \
	"$(w old flood)" "$(w new flood)"

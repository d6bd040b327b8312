#!/usr/bin/env bash
# bench/client.sh - the client through the federation, on a cluster of
# namespaced hosts (scripts/cluster.sh), figures side by side with a
# baseline from the same run:
#
#  1. `fed get` of a 10 MiB file through the federation (lookup from its
#     cache, peer chosen by its statistics) vs `curl` straight to the
#     serving peer's host port: median of RUNS each, MB/s.
#  2. Client selection: one of two peers slowed (tbf rate limit on its
#     link; this kernel has no netem), then ROUNDS `fed get`s of a 256 KiB
#     file: the share that went to the fast peer after the first round.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/scripts/lib.sh"
export BINDIR=${BINDIR:-$ROOT/bin}
export FED_CLUSTER=fedbench$$
export FED_CLUSTER_DIR=${TMPDIR:-/tmp}/$FED_CLUSTER
CLUSTER=$ROOT/scripts/cluster.sh
FED=$BINDIR/fed
RUNS=${RUNS:-7}
ROUNDS=${ROUNDS:-40}
SLOW_RATE=${SLOW_RATE:-20mbit}

trap '"$CLUSTER" down >/dev/null 2>&1' EXIT
"$CLUSTER" up 2 2>/dev/null || { echo "bench/client: cluster did not come up"; exit 1; }
eval "$("$CLUSTER" env)"
on() { "$CLUSTER" exec "$@"; }

site=$CLUSTER_DIR/site
mkdir -p "$site/var/www"
head -c $((10 << 20)) /dev/urandom >"$site/var/www/big.bin"
head -c $((256 << 10)) /dev/urandom >"$site/var/www/page.bin"
"$FED" snapshot create --kernel "$CLUSTER_DIR/kernel" --base "$CLUSTER_DIR/base.img" \
	--files "$site" --run 'httpd -f -p 80 -h /var/www' \
	--service www.example.org:80 --guest-port 80 --key "$KEY_owner" \
	-o "$CLUSTER_DIR/web.fedsnap" --version 1 >/dev/null || exit 1
id=$("$FED" snapshot inspect "$CLUSTER_DIR/web.fedsnap" --json | jq -r .id)
cp "$CLUSTER_DIR/web.fedsnap" "$MNT_owner/publish/" || exit 1
for p in p1 p2; do
	mnt=$(eval echo "\$MNT_$p")
	wait_for 30 test -e "$mnt/deltas/$id.fedsnap" &&
		cp "$mnt/deltas/$id.fedsnap" "$mnt/commit/web.fedsnap"
done
npeers() {
	[ "$(on client curl -fsS "$AUTH/v1/lookup?host=www.example.org&port=80" |
		jq '.peers | length')" = 2 ]
}
wait_for 120 npeers || { echo "bench/client: peers did not come up"; exit 1; }
peers=$(on client curl -fsS "$AUTH/v1/lookup?host=www.example.org&port=80" |
	jq -r '.peers[] | "\(.addr):\(.port)"')

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
cache=$CLUSTER_DIR/client-cache
fedget() {	# fedget PATH -> the JSON line fed get --json prints
	on client "$FED" get "http://www.example.org$1" --authority "$AUTH" \
		--cache "$cache" --json -o /dev/null 2>&1 >/dev/null | tail -n 1
}

# 1. fed get vs curl, same bytes, same run
on client "$FED" get http://www.example.org/page.bin --authority "$AUTH" \
	--cache "$cache" -o /dev/null	# warm the lookup cache
direct=$(echo "$peers" | head -n 1)
fed_s=() curl_s=()
for ((i = 0; i < RUNS; i++)); do
	fed_s+=("$(fedget /big.bin | jq -r .seconds)")
	curl_s+=("$(on client curl -fsS -o /dev/null -w '%{time_total}' \
		-H 'Host: www.example.org' "http://$direct/big.bin")")
done
f=$(printf '%s\n' "${fed_s[@]}" | median)
c=$(printf '%s\n' "${curl_s[@]}" | median)
printf 'fed get 10 MiB via the federation: %6.1f MB/s (median of %d, %.3f s)\n' \
	"$(echo "10.48576 / $f" | bc -l)" "$RUNS" "$f"
printf 'curl straight to a peer (%s): %6.1f MB/s (median of %d, %.3f s)\n' \
	"$direct" "$(echo "10.48576 / $c" | bc -l)" "$RUNS" "$c"
printf 'ratio fed get / curl: %.2f\n' "$(echo "$c / $f" | bc -l)"

# 2. selection with p2 slowed
on p2 tc qdisc add dev eth0 root tbf rate "$SLOW_RATE" burst 32kb latency 400ms
rm -rf "$cache"
fast=0 slow=0 first=
for ((i = 0; i < ROUNDS; i++)); do
	addr=$(fedget /page.bin | jq -r .addr)
	if [ $i -lt 2 ]; then	# the first round: each peer tried once
		first+="$addr "
		continue
	fi
	if [ "$addr" = "$ADDR_p1" ]; then fast=$((fast + 1)); else slow=$((slow + 1)); fi
done
printf 'selection, p2 limited to %s: first round %s; after it %d of %d to the fast peer (%.0f%%)\n' \
	"$SLOW_RATE" "$first" "$fast" $((fast + slow)) "$(echo "100 * $fast / ($fast + $slow)" | bc -l)"

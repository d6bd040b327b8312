#!/usr/bin/env bash
# examples/debian-web.sh - Apache2 and nginx on the Debian base, each a
# service snapshot with a page of its own, installed the Debian way (dpkg
# from the .debs scripts/deps.sh cached, at import time: `fed snapshot
# create --setup`), published, committed on two peers of a namespace
# cluster (scripts/cluster.sh; the vmrunner jails each machine), fetched
# with `fed get` and through `fed proxy`.  Prints each delta's size.
# Needs root, `make` and scripts/deps.sh.  FED_CLUSTER names the cluster
# (default fedexdeb).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/scripts/lib.sh"
export BINDIR=${BINDIR:-$ROOT/bin}
export FED_CLUSTER=${FED_CLUSTER:-fedexdeb}
export FED_CLUSTER_DIR=${FED_CLUSTER_DIR:-${TMPDIR:-/tmp}/$FED_CLUSTER}
CLUSTER=$ROOT/scripts/cluster.sh
FED=$BINDIR/fed
say() { printf 'example: %s\n' "$*"; }
on() { "$CLUSTER" exec "$@"; }

entry=$(bash "$ROOT/scripts/mkbase.sh" --debian-cached)
export FED_CLUSTER_BASE=$entry/base.img FED_CLUSTER_MEM=64 FED_CLUSTER_BASE_CHUNK=65536
trap '"$CLUSTER" down >/dev/null 2>&1' EXIT
"$CLUSTER" up 2 2>&1 | sed 's/^/  /'
eval "$("$CLUSTER" env)"
say "cluster $FED_CLUSTER, Debian base $(cat "$entry/base.sha256")"

# make NAME SERVICE-CMD: a snapshot NAME.example.org:80 of the server NAME
make() {
	local name=$1 run=$2 site=$CLUSTER_DIR/site-$1
	mkdir -p "$site/var/www/html"
	echo "Hello from $name on Debian, served by fed" >"$site/var/www/html/index.html"
	"$FED" snapshot create --kernel "$CLUSTER_DIR/kernel" --base "$CLUSTER_DIR/base.img" \
		--files "$site" --setup-files "$entry/debs/$name" \
		--setup 'dpkg -i --force-unsafe-io /mnt/setup-files/*.deb' \
		--run "$run" --service "$name.example.org:80" --guest-port 80 \
		--key "$KEY_owner" -o "$CLUSTER_DIR/$name.fedsnap" --version 1 \
		--mem 128 --timeout 300 >/dev/null
	say "$name: delta $(stat -c %s "$CLUSTER_DIR/$name.fedsnap") bytes (the paper's Apache: 6.3 MB)"
	cp "$CLUSTER_DIR/$name.fedsnap" "$MNT_owner/publish/"
}
make apache2 'apache2ctl -D FOREGROUND'
make nginx "nginx -g 'daemon off;'"

npeers() {
	[ "$(on client curl -fsS --max-time 3 "$AUTH/v1/lookup?host=$1.example.org&port=80" |
		jq '.peers | length' 2>/dev/null)" = "$2" ]
}
for name in apache2 nginx; do
	id=$("$FED" snapshot inspect "$CLUSTER_DIR/$name.fedsnap" --json | jq -r .id)
	for p in p1 p2; do
		mnt=$(eval echo "\$MNT_$p")
		wait_for 30 test -e "$mnt/deltas/$id.fedsnap"
		cp "$mnt/deltas/$id.fedsnap" "$mnt/commit/$name.fedsnap"
	done
	wait_for 120 npeers "$name" 2 || { say "$name: the peers did not come up"; exit 1; }
	say "$name: served by p1 and p2"
done

on client setsid "$FED" proxy --listen "$ADDR_client:3128" --authority "$AUTH" \
	--cache "$CLUSTER_DIR/proxy-cache" >>"$CLUSTER_DIR/proxy.log" 2>&1 &
wait_for 10 on client curl -s -o /dev/null "http://$ADDR_client:3128/"
for name in apache2 nginx; do
	say "fed get http://$name.example.org/ -> $(on client "$FED" get "http://$name.example.org/" \
		--authority "$AUTH" --cache "$CLUSTER_DIR/cache")"
	say "curl -x fed-proxy http://$name.example.org/ -> $(on client curl -fsS --max-time 20 \
		-x "http://$ADDR_client:3128" "http://$name.example.org/")"
done
say "PASS"

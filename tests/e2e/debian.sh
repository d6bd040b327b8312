#!/usr/bin/env bash
# End-to-end test of the Debian base (scripts/mkbase.sh --debian) and of
# installing packages into a snapshot the Debian way: the base that
# scripts/deps.sh built into the cache boots under fed's kernel and keeps
# the /init contract (tests/e2e/contract.bash); an Apache snapshot made with
# `fed snapshot create --setup` from the cached .debs (no network) is
# published, committed on two peers of a namespace cluster, fetched with
# `fed get`, and still served after one peer is killed; the cold peer's
# store holds a small part of the base.  Needs root.
. "$(dirname "$0")/lib.sh"

need_uml
mktempdir tmp

# --- the cached base -----------------------------------------------------------
if entry=$(bash "$ROOT/scripts/mkbase.sh" --debian-cached 2>"$tmp/cached.err"); then
	ok "the Debian base and its .debs are in the cache ($entry)"
else
	not_ok "the Debian base and its .debs are in the cache: $(cat "$tmp/cached.err") (run scripts/deps.sh)"
	exit 1
fi
base=$entry/base.img
base_sha=$(cat "$entry/base.sha256")
echo "# Debian base $base_sha, $(du -m "$base" | cut -f1) MiB of data in a $(($(stat -c %s "$base") >> 20)) MiB image"
check "the Debian base's /etc/hosts names its hostname (Apache's AH00558)" \
	sh -c "debugfs -R 'cat /etc/hosts' '$base' 2>/dev/null | grep -q -E '^127\.0\.1\.1[[:space:]]+fed\$'"

# --- the /init contract on it ----------------------------------------------------
CONTRACT_LABEL="Debian base"
. "$(dirname "$0")/contract.bash"

# --- Apache, installed with dpkg at import time, served by two peers ------------
CLUSTER=$ROOT/scripts/cluster.sh
export FED_CLUSTER=fed22deb$$ FED_CLUSTER_DIR=$tmp/cluster BINDIR FED_UML_KERNEL=$UML
# 64 KiB chunks: a peer fetches whole chunks of the base as the guest reads it
export FED_CLUSTER_BASE=$base FED_CLUSTER_MEM=64 FED_CLUSTER_BASE_CHUNK=65536
on_exit "'$CLUSTER' down"
if ! "$CLUSTER" up 2 2>"$tmp/cluster.log"; then
	not_ok "a cluster with the Debian base comes up"
	sed 's/^/# /' "$tmp/cluster.log"
	exit 1
fi
eval "$("$CLUSTER" env)"
check "cluster.sh env names the cluster it describes" test "$FED_CLUSTER" = "fed22deb$$"
on() { "$CLUSTER" exec "$@"; }

site=$tmp/apache
mkdir -p "$site/var/www/html"
page="Apache on Debian, served by fed $RANDOM$RANDOM"
echo "$page" >"$site/var/www/html/index.html"
t0=$SECONDS
if "$FED" snapshot create --kernel "$CLUSTER_DIR/kernel" --base "$CLUSTER_DIR/base.img" \
	--files "$site" --setup-files "$entry/debs/apache2" \
	--setup 'dpkg -i --force-unsafe-io /mnt/setup-files/*.deb' \
	--run 'apache2ctl -D FOREGROUND' --service apache.example.org:80 --guest-port 80 \
	--key "$KEY_owner" -o "$tmp/apache.fedsnap" --version 1 --mem 128 --timeout 240 \
	--keep-log "$tmp/apache-create.log" >"$tmp/create.out" 2>&1; then
	ok "fed snapshot create --setup installs Apache's .debs in the guest ($((SECONDS - t0)) s)"
else
	sed 's/^/# /' "$tmp/create.out"
	grep -a 'fed-init' "$tmp/apache-create.log" | tail -n 20 | sed 's/^/#   /'
	not_ok "fed snapshot create --setup installs Apache's .debs in the guest"
	exit 1
fi
delta=$(stat -c %s "$tmp/apache.fedsnap")
echo "# Apache delta: $delta bytes ($((delta / 1000)) kB; the paper's was 6.3 MB)"
check "dpkg configured apache2 in the guest" \
	grep -a -q '^fed-init: setup: Setting up apache2 ' "$tmp/apache-create.log"
id=$("$FED" snapshot inspect "$tmp/apache.fedsnap" --json | jq -r .id)
check "the owner publishes it" cp "$tmp/apache.fedsnap" "$MNT_owner/publish/"

commit() {	# commit PEER: the peer commits to the snapshot it sees
	local mnt
	mnt=$(eval echo "\$MNT_$1")
	wait_for 30 test -e "$mnt/deltas/$id.fedsnap" &&
		cp "$mnt/deltas/$id.fedsnap" "$mnt/commit/apache.fedsnap"
}
npeers() {
	[ "$(on client curl -fsS --max-time 3 "$AUTH/v1/lookup?host=apache.example.org&port=80" |
		jq '.peers | length' 2>/dev/null)" = "$1" ]
}
fedget() { on client "$FED" get --authority "$AUTH" --cache "$tmp/cache" "$@"; }
got_page() { [ "$(fedget http://apache.example.org/ 2>/dev/null)" = "$page" ]; }

t0=$(date +%s%N)
check "p1 commits it with an empty cache" commit p1
check "p1 serves Apache" wait_for 90 npeers 1
check "fed get http://apache.example.org/ returns its page" wait_for 30 got_page
echo "# p1: commit to first page $((($(date +%s%N) - t0) / 1000000)) ms"
# What the cold peer holds: every chunk it stored.  The delta and the
# kernel are fetched whole; the rest is the base's chunks the boot and
# Apache read.
store=$(du -sb "$CLUSTER_DIR/p1/fedfs" | cut -f1)
bsize=$(stat -c %s "$CLUSTER_DIR/base.img")
ksize=$(stat -c %s "$CLUSTER_DIR/kernel")
bpart=$((store - delta - ksize))
echo "# p1's store: $store bytes: delta $delta, kernel $ksize, base about $bpart ($((bpart * 1000 / bsize))/1000 of the $bsize-byte base, $((bpart * 100 / $(du -B1 "$base" | cut -f1)))% of its data)"
check "after the cold commit p1's store holds less than 10% of the base" \
	test "$bpart" -lt $((bsize / 10))
grep -a -i 'AH00558' "$CLUSTER_DIR"/p1/vmrunner/*/console* 2>/dev/null | head -n 2 | sed 's/^/# /'

check "p2 commits it too" commit p2
check "two peers serve Apache" wait_for 90 npeers 2
"$CLUSTER" kill p1 >/dev/null 2>&1
check "after scripts/cluster.sh kill p1, fed get still returns the page (from p2)" \
	wait_for 30 got_page

#!/usr/bin/env bash
# demo.sh - fed end to end on one machine, in plain words (`make demo`).
#
# An authority, an owner, three peers and a client, each a host of its own
# (scripts/cluster.sh: network namespaces on a bridge).  The owner makes a
# web-service snapshot and publishes it; two peers commit to it and boot it
# as User-Mode Linux machines; the client fetches the page with `fed get`
# and with plain curl through `fed proxy`; one peer is killed and the
# client still gets the page.  Then everything is torn down.  The last line
# is the verdict.  Needs root; run `make` (or `make demo`) first.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/scripts/lib.sh"
export BINDIR=${BINDIR:-$ROOT/bin}
export FED_CLUSTER=${FED_CLUSTER:-feddemo}
export FED_CLUSTER_DIR=${FED_CLUSTER_DIR:-${TMPDIR:-/tmp}/$FED_CLUSTER}
CLUSTER=$ROOT/scripts/cluster.sh
FED=$BINDIR/fed
t0=$SECONDS
step=0
failed=

bold= plain=
[ -t 1 ] && bold=$'\033[1m' plain=$'\033[0m'
say() { printf '\n%s%d. %s%s\n' "$bold" "$((step += 1))" "$*" "$plain"; }
run() { printf '   $ %s\n' "$*"; }	# the command a person would type
note() { printf '   %s\n' "$*"; }
fail() {
	failed=$*
	printf '   FAILED: %s\n' "$*"
	exit 1
}
finish() {
	local rc=$?
	printf '\n'
	"$CLUSTER" down >/dev/null 2>&1
	if [ -z "$failed" ] && [ $rc = 0 ]; then
		printf 'demo: PASS - the federation served the page through every step, then was torn down (%d s)\n' \
			$((SECONDS - t0))
	else
		printf 'demo: FAIL - %s (logs were in %s)\n' "${failed:-interrupted}" \
			"$FED_CLUSTER_DIR"
		exit 1
	fi
}
trap finish EXIT
trap 'exit 130' INT TERM


[ "$(id -u)" = 0 ] || { failed="needs root (namespaces, taps, FUSE)"; exit 1; }
"$CLUSTER" down >/dev/null 2>&1	# a previous demo cut short

say "Start the hosts: an authority, an owner, three peers and a client"
note "each is a network namespace on a private bridge (no route out)"
run "scripts/cluster.sh up 3"
"$CLUSTER" up 3 2>&1 | sed 's/^/   /' || fail "the cluster did not come up"
eval "$("$CLUSTER" env)"
on() { "$CLUSTER" exec "$@"; }
note "the admin has trusted the UML kernel and the base image; the owner's"
note "fedfs serves them to the peers"

say "The owner makes a snapshot of a web server"
mkdir -p "$CLUSTER_DIR/site/var/www"
page="Hello from a federated web site (made $(date -u +%H:%M:%S))"
echo "$page" >"$CLUSTER_DIR/site/var/www/index.html"
run "fed snapshot create --kernel linux.uml --base base.img --files site/ \\"
run "    --run 'httpd -f -p 80 -h /var/www' --service www.example.org:80 \\"
run "    --guest-port 80 --key owner.key -o web.fedsnap"
"$FED" snapshot create --kernel "$CLUSTER_DIR/kernel" \
	--base "$CLUSTER_DIR/base.img" --files "$CLUSTER_DIR/site" \
	--run 'httpd -f -p 80 -h /var/www' --service www.example.org:80 \
	--guest-port 80 --key "$KEY_owner" -o "$CLUSTER_DIR/web.fedsnap" \
	--version 1 2>&1 | sed 's/^/   /' || fail "fed snapshot create"
id=$("$FED" snapshot inspect "$CLUSTER_DIR/web.fedsnap" --json | jq -r .id)
note "a signed delta of $(stat -c %s "$CLUSTER_DIR/web.fedsnap") bytes over a 64 MiB base; id ${id:0:16}..."

say "The owner publishes it"
run "cp web.fedsnap /fed/publish/"
cp "$CLUSTER_DIR/web.fedsnap" "$MNT_owner/publish/" ||
	fail "publishing (see $CLUSTER_DIR/owner/fedfs.log)"
note "fedfs checked the signature and every chunk, and announced it"

say "Two peers commit to host it"
for p in p1 p2; do
	mnt=$(eval echo "\$MNT_$p")
	run "cp /fed/deltas/${id:0:8}...fedsnap /fed/commit/web.fedsnap   (on $p)"
	wait_for 30 test -e "$mnt/deltas/$id.fedsnap" ||
		fail "$p does not see the snapshot"
	cp "$mnt/deltas/$id.fedsnap" "$mnt/commit/web.fedsnap" ||
		fail "$p could not commit"
done
lookup_n() {
	[ "$(on client curl -fsS "$AUTH/v1/lookup?host=www.example.org&port=80" |
		jq '.peers | length')" = "$1" ]
}
note "each peer's vmrunner fetches what it lacks, boots a UML machine on a"
note "private address and maps a host port to it..."
wait_for 90 lookup_n 2 || fail "the two peers did not come up (see $CLUSTER_DIR/p*/vmrunner.log)"
run "fed lookup www.example.org:80 --authority $AUTH   (on the client)"
on client "$FED" lookup www.example.org:80 --authority "$AUTH" | sed 's/^/   /'

say "The client fetches the page through the federation"
run "fed get http://www.example.org/ --authority $AUTH"
got=$(on client "$FED" get http://www.example.org/ --authority "$AUTH" \
	--cache "$CLUSTER_DIR/client-cache") || fail "fed get"
note "-> $got"
[ "$got" = "$page" ] || fail "fed get returned another page"

say "Any client, through fed proxy: plain curl"
"$CLUSTER" exec client setsid "$FED" proxy --listen "$ADDR_client:3128" --authority "$AUTH" \
	--cache "$CLUSTER_DIR/proxy-cache" >>"$CLUSTER_DIR/proxy.log" 2>&1 &
disown
run "fed proxy --listen $ADDR_client:3128 --authority $AUTH &"
run "curl -x http://$ADDR_client:3128 http://www.example.org/"
wait_for 10 on client curl -s -o /dev/null "http://$ADDR_client:3128/" ||
	fail "fed proxy did not start (see $CLUSTER_DIR/proxy.log)"
got=$(on client curl -fsS --max-time 20 -x "http://$ADDR_client:3128" \
	http://www.example.org/) || fail "curl through fed proxy"
note "-> $got"
[ "$got" = "$page" ] || fail "the proxy returned another page"

say "Peer p1 dies; the client still gets the page"
run "scripts/cluster.sh kill p1"
"$CLUSTER" kill p1 >/dev/null 2>&1
run "fed get http://www.example.org/ --authority $AUTH"
got=$(on client "$FED" get http://www.example.org/ --authority "$AUTH" \
	--cache "$CLUSTER_DIR/client-cache") || fail "fed get after p1 died"
note "-> $got"
[ "$got" = "$page" ] || fail "fed get returned another page after p1 died"
run "curl -x http://$ADDR_client:3128 http://www.example.org/"
got=$(on client curl -fsS --max-time 20 -x "http://$ADDR_client:3128" \
	http://www.example.org/) || fail "curl through fed proxy after p1 died"
note "-> $got"

say "Tear everything down"
run "scripts/cluster.sh down"

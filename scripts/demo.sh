#!/usr/bin/env bash
# demo.sh - fed end to end on one machine, in plain words (`make demo`).
#
# An authority, an owner, three peers and a client, each a host of its own
# (scripts/cluster.sh: network namespaces on a bridge).  The owner makes a
# web-service snapshot and publishes it; two peers commit to it and boot it
# as User-Mode Linux machines; the client fetches the page with `fed get`
# and with plain curl through `fed proxy`.  The owner then saves a second
# service while it runs (a QEMU running-state snapshot) and a third peer
# resumes it: its page still has the token drawn when the owner started
# it.  One peer is killed and the client still gets the page.  Then
# everything is torn down.  The last line
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
run "fed snapshot create --base base.img --files site/ \\"
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

say "A machine saved while running: the owner's service, resumed by p3 under QEMU"
note "UML boots a snapshot (about 2 s here); a running-state snapshot carries the"
note "machine's memory too, so a peer resumes the service instead of starting it"
run "scripts/mkqemukernel.sh qkernel.bin     # Debian's kernel + initramfs, one file"
bash "$ROOT/scripts/mkqemukernel.sh" "$CLUSTER_DIR/qkernel" >/dev/null 2>"$CLUSTER_DIR/qkernel.log" ||
	fail "scripts/mkqemukernel.sh (see $CLUSTER_DIR/qkernel.log)"
run "fed trust add qkernel.bin --kind kernel ...   (the admin)"
on client "$FED" trust add "$CLUSTER_DIR/qkernel" --kind kernel \
	--authority "$AUTH" --key "$ADMIN_KEY" >/dev/null || fail "trusting the QEMU kernel"
qsum=$(sha256sum <"$CLUSTER_DIR/qkernel" | cut -c1-64)
wait_for 20 test -e "$MNT_owner/kernels/$qsum" ||
	fail "the owner's fedfs does not list the trusted QEMU kernel"
cp "$CLUSTER_DIR/qkernel" "$MNT_owner/publish/" || fail "publishing the QEMU kernel"
mkdir -p "$CLUSTER_DIR/clock"
# a token drawn when the service starts: a resumed machine still has it
svc='t=$(cat /proc/sys/kernel/random/uuid); echo "fed-token $t"; echo "started with token $t" >/var/www/index.html; httpd -f -p 80 -h /var/www'
run "fed snapshot create --running --kernel qkernel.bin --base base.img \\"
run "    --run '<draw a token, serve it>' --service clock.example.org:80 ... -o clock.fedsnap"
"$FED" snapshot create --running --kernel "$CLUSTER_DIR/qkernel" \
	--uml-kernel "$CLUSTER_DIR/kernel" --base "$CLUSTER_DIR/base.img" --files "$CLUSTER_DIR/clock" --run "$svc" \
	--service clock.example.org:80 --guest-port 80 --key "$KEY_owner" \
	-o "$CLUSTER_DIR/clock.fedsnap" --version 1 --timeout 240 \
	--keep-log "$CLUSTER_DIR/clock-create.log" >/dev/null 2>&1 ||
	fail "fed snapshot create --running (see $CLUSTER_DIR/clock-create.log)"
token=$(grep -ao 'fed-token [0-9a-f-]*' "$CLUSTER_DIR/clock-create.log" | head -n 1 | cut -d' ' -f2)
note "the owner's machine started its service with token $token, then was saved"
note "($(stat -c %s "$CLUSTER_DIR/clock.fedsnap") bytes: disk delta and memory, compressed and signed)"
qid=$("$FED" snapshot inspect "$CLUSTER_DIR/clock.fedsnap" --json | jq -r .id)
cp "$CLUSTER_DIR/clock.fedsnap" "$MNT_owner/publish/" || fail "publishing the running-state snapshot"
run "cp /fed/deltas/${qid:0:8}...fedsnap /fed/commit/clock.fedsnap   (on p3)"
wait_for 30 test -e "$MNT_p3/deltas/$qid.fedsnap" || fail "p3 does not see the snapshot"
cp "$MNT_p3/deltas/$qid.fedsnap" "$MNT_p3/commit/clock.fedsnap" || fail "p3 could not commit"
clock_up() {
	[ "$(on client curl -fsS "$AUTH/v1/lookup?host=clock.example.org&port=80" |
		jq '.peers | length')" = 1 ]
}
wait_for 120 clock_up || fail "p3 did not resume it (see $CLUSTER_DIR/p3/vmrunner.log)"
note "p3: $(grep -ao 'resumed.*' "$CLUSTER_DIR/p3/vmrunner.log" | tail -n 1)"
run "fed get http://clock.example.org/"
got=$(on client "$FED" get http://clock.example.org/ --authority "$AUTH" \
	--cache "$CLUSTER_DIR/client-cache") || fail "fed get of the resumed service"
note "-> $got"
[ "$got" = "started with token $token" ] ||
	fail "the resumed service does not have the owner's token: it was restarted"
note "the same token: the service was resumed as it ran, not booted again"

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

#!/usr/bin/env bash
# Peers mirror the authority's signed lookup answers (issue 21, "Peers
# mirror"; docs/fedfs.md "Mirrored lookup answers", docs/client.md "When
# every authority is down"), on loopback with a real fed-authority --key:
# a fedfs peer started with --authority-key commits to a service and
# serves its signed answer at GET /v1/lookup on its object server; one
# without the key mirrors nothing.  Then every authority is killed: fed
# get, fed lookup and fed proxy with --mirror still reach the service (a
# plain python3 web server on the address its commitment reports, faked
# with tests/tools/authcall) through the fresh answer a peer mirrors.  A
# lying peer (a python3 server) serving a forged answer, or an older one
# than the client holds, is skipped, and the client says so.  A client
# told no mirror asks those its cached signed answer names.  No machine
# is booted: the snapshot is packed from a COW made by tests/tools/mkcow.
source "$(dirname "$0")/lib.sh"

AC=$ROOT/${BUILD:-build}/tests/tools/authcall
MKCOW=$ROOT/${BUILD:-build}/tests/tools/mkcow
for t in "$AC" "$MKCOW"; do
	[ -x "$t" ] || { not_ok "$t is built (make check builds it)"; exit 1; }
done
mktempdir d
HOST=www.example.org
LOOKUP="/v1/lookup?host=$HOST&port=80"
fails() { ! "$@"; }
listening() { ss -Hltn "sport = :$1" | grep -q .; }

"$FED" keygen -o "$d/authority.key" >/dev/null
PUB=$("$FED" pubkey "$d/authority.key")
start_authority "$d/auth" --key "$d/authority.key" ||
	{ not_ok "the authority starts with --key"; exit 1; }

# a base, a kernel and a one-sector snapshot of the service, published by
# its owner's fedfs
MiB=1048576
head -c $MiB /dev/urandom >"$d/base.img"
head -c 65536 /dev/urandom >"$d/kernel"
for kind in base kernel; do
	f=$d/kernel; [ $kind = base ] && f=$d/base.img
	"$FED" trust add "$f" --kind $kind --authority "$AUTH" \
		--key "$ADMIN_KEY" >/dev/null
done
ksum=$(sha256sum <"$d/kernel" | cut -c1-64)
"$MKCOW" "$d/base.img" "$d/web.cow" || { not_ok "mkcow makes a COW"; exit 1; }
"$FED" keygen -o "$d/owner.key" >/dev/null
"$FED" snapshot pack --base "$d/base.img" --cow "$d/web.cow" \
	--service $HOST:80 --guest-port 80 --kernel-hash "$ksum" \
	--key "$d/owner.key" -o "$d/web.fedsnap" --version 1 >/dev/null ||
	{ not_ok "a snapshot is packed"; exit 1; }
id=$("$FED" snapshot inspect "$d/web.fedsnap" --json | jq -r .id)
start_fedfs owner 127.0.0.1 "$d" || { not_ok "the owner's fedfs starts"; exit 1; }
cp "$d/base.img" "$d/kernel" "$d/web.fedsnap" "$MNT_owner/publish/"

# the service itself: a plain web server where the peer's commitment says
start_fedfs p 127.0.0.2 "$d" --authority-key "$PUB" ||
	{ not_ok "a fedfs with --authority-key starts"; exit 1; }
start_fedfs nokey 127.0.0.3 "$d" || { not_ok "a fedfs without the key starts"; exit 1; }
commit() {	# commit MNT: commit to the snapshot from deltas/
	wait_for 30 test -e "$1/deltas/$id.fedsnap" &&
		cp "$1/deltas/$id.fedsnap" "$1/commit/web.fedsnap"
}
check "the peer commits to the service" commit "$MNT_p"
check "so does the peer without the key" commit "$MNT_nokey"
mkdir -p "$d/www"
echo "page $RANDOM$RANDOM" >"$d/www/index.html"
web_port=$(free_port)
python3 -m http.server "$web_port" --bind 127.0.0.1 --directory "$d/www" \
	>/dev/null 2>&1 &
on_exit "kill $!"
wait_for 10 listening "$web_port" || not_ok "the service's web server starts"
curl -fsS "$AUTH$LOOKUP" >"$d/before.json"	# no peer up: an older state
up() {	# up KEY: the commitment is up, served at the web server
	"$AC" "$AUTH" POST /v1/commitments --key "$1" \
		--body "{\"snapshot\":\"$id\",\"up\":true,\"addr\":\"127.0.0.1\",\"port\":$web_port}" |
		grep -q '^20[01] '
}
check "the peer's commitment is up" up "$KEY_p"
check "the authority's answer lists it" \
	bash -c "curl -fsS '$AUTH$LOOKUP' | jq -e '.peers[] | select(.port == $web_port)' >/dev/null"

# ---- the peers mirror ----
mirrored() {	# mirrored SERVE: its answer lists the web server
	local body
	body=$(curl -fsS "http://$1$LOOKUP" 2>/dev/null) || return 1
	jq -e ".peers[] | select(.port == $web_port)" <<<"$body" >/dev/null
}
check "the peer with --authority-key mirrors the signed answer (within its 15 s refresh)" \
	wait_for 40 mirrored "$SERVE_p"
curl -fsS "http://$SERVE_p$LOOKUP" >"$d/mirrored.json"
check "what it serves is the authority's, signed" \
	bash -c "test \"\$(jq -r .key '$d/mirrored.json')\" = '$PUB' && jq -e '.signature and .version and .expires' '$d/mirrored.json' >/dev/null"
check "the peer without the key mirrors nothing (404)" \
	test "$(curl -s -o /dev/null -w '%{http_code}' "http://$SERVE_nokey$LOOKUP")" = 404
check "nor does it answer for a service it does not host" \
	test "$(curl -s -o /dev/null -w '%{http_code}' "http://$SERVE_p/v1/lookup?host=other.example.org&port=80")" = 404

# ---- a lying peer: serves whatever is in its file ----
liar_port=$(free_port)
serve_file "$liar_port" "$d/lie.json"
LIAR=127.0.0.1:$liar_port
# forged: the café router's address for the peer's, a version far ahead
jq -c ".peers[0].addr = \"127.0.0.9\" | .version += 1000000" \
	"$d/mirrored.json" >"$d/lie.json"
wait_for 10 listening "$liar_port" || not_ok "the lying peer starts"

# ---- every authority down ----
check "the signed answer names the peer's object server as a mirror" \
	bash -c "curl -fsS '$AUTH$LOOKUP' | jq -e '.peers[] | select(.mirror == \"$SERVE_p\")' >/dev/null"
for c in held learn; do
	check "a client ($c) caches the authority's answer" \
		"$FED" get "http://$HOST/index.html" --authority "$AUTH" \
		--authority-key "$PUB" --cache "$d/cache-$c" -o /dev/null
done
kill "$AUTH_PID"
wait_for 10 gone "$AUTH_PID" || not_ok "the authority is killed"
DEAD2=http://127.0.0.1:$(free_port)
AUTHS=$AUTH,$DEAD2
MIRRORS=$LIAR,$SERVE_p

"$FED" get "http://$HOST/index.html" --authority "$AUTHS" --authority-key "$PUB" \
	--mirror "$MIRRORS" --cache "$d/cache-get" -o "$d/got" 2>"$d/get.err"
check "fed get reaches the service through the mirrored answer" \
	cmp -s "$d/got" "$d/www/index.html"
check "saying every authority was unreachable and which mirror answered" \
	grep -q "authority unreachable .*using the signed answer mirrored by $SERVE_p" "$d/get.err"
check "the lying peer's forged answer is skipped, and named" \
	grep -q "mirror $LIAR skipped: .*bad signature" "$d/get.err"
check "nothing was fetched from the forged address" fails grep -q 127.0.0.9 "$d/get.err"
check "the mirrored answer was cached (it verified)" \
	test -s "$d/cache-get/lookup/$HOST:80.json"
check "without --mirror the client has nothing (no cache, no DNS for the name)" \
	fails "$FED" get "http://$HOST/index.html" --authority "$AUTHS" \
	--authority-key "$PUB" --cache "$d/cache-none" -o /dev/null 2>/dev/null

out=$("$FED" lookup "$HOST:80" --authority "$AUTHS" --authority-key "$PUB" \
	--mirror "$MIRRORS" 2>"$d/lookup.err")
check "fed lookup gives the mirrored answer, signed" \
	grep -q "^source: mirror $SERVE_p (ttl [0-9]*s, signed, version" <<<"$out"
check "and the peer" grep -q "^127.0.0.1 $web_port " <<<"$out"
check "fed lookup names the lying peer too" grep -q "mirror $LIAR skipped" "$d/lookup.err"

proxy_port=$(free_port)
"$FED" proxy --listen "127.0.0.1:$proxy_port" --authority "$AUTHS" \
	--authority-key "$PUB" --mirror "$MIRRORS" --cache "$d/cache-proxy" \
	2>"$d/proxy.log" &
on_exit "kill $!"
wait_for 10 listening "$proxy_port" || not_ok "fed proxy starts"
check "fed proxy serves it through the mirrored answer" \
	bash -c "curl -fsS -x http://127.0.0.1:$proxy_port http://$HOST/index.html | cmp -s - '$d/www/index.html'"

# a client told no mirror asks those its cached (verified) answer names
cf=$d/cache-learn/lookup/$HOST:80.json
jq -c '.fetched -= 100' "$cf" >"$cf.new" && mv "$cf.new" "$cf"
"$FED" get "http://$HOST/index.html" --authority "$AUTHS" --authority-key "$PUB" \
	--cache "$d/cache-learn" -o "$d/got3" 2>"$d/learn.err"
check "without --mirror, the mirrors named by the answer held are asked" \
	grep -q "using the signed answer mirrored by $SERVE_p" "$d/learn.err"
check "and the page comes" cmp -s "$d/got3" "$d/www/index.html"

# rollback: the liar replays a valid, older answer (no peer up) to a
# client that holds the newer one, past its ttl
cp "$d/before.json" "$d/lie.json"
cf=$d/cache-held/lookup/$HOST:80.json
jq -c '.fetched -= 100' "$cf" >"$cf.new" && mv "$cf.new" "$cf"
"$FED" get "http://$HOST/index.html" --authority "$AUTHS" --authority-key "$PUB" \
	--mirror "$LIAR" --cache "$d/cache-held" -o "$d/got2" 2>"$d/rb.err"
check "an older answer from a peer is skipped as a rollback" \
	grep -q "mirror $LIAR skipped: .*(a rollback)" "$d/rb.err"
check "and the page still comes (the held answer, or the one the peer it names mirrors)" \
	cmp -s "$d/got2" "$d/www/index.html"

check "--mirror without --authority-key is a usage error" \
	bash -c "'$FED' get http://$HOST/ --authority '$AUTHS' --mirror '$SERVE_p' 2>&1 | grep -q 'needs --authority-key'"
check "a bad --mirror is refused saying why" \
	bash -c "'$FED' get http://$HOST/ --authority '$AUTHS' --authority-key '$PUB' --mirror '127.0.0.1:0' 2>&1 | grep -q 'bad port'"

#!/usr/bin/env bash
# Signed lookup answers end to end (issue 21; docs/authority-api.md,
# "Signed answers"): a real fed-authority with --key and a short
# --answer-ttl (4 s), a service with one peer (a plain web server), and
# clients that pin the authority's public key.  The live answer is
# accepted by fed lookup, fed get and fed proxy; then a "man in the
# middle" (a small python3 server standing in for the authority) replays
# a saved answer: within its validity it is used, altered by one byte it
# is refused, older than the answer the client holds it is refused as a
# rollback, and once expired it is refused saying so, unless
# --allow-stale.  An authority without a key is refused too, even its DNS
# fallback.  Entries are written with tests/tools/authcall, no fedfs.
source "$(dirname "$0")/lib.sh"

AC=$ROOT/${BUILD:-build}/tests/tools/authcall
[ -x "$AC" ] || { not_ok "$AC is built (make check builds it)"; exit 1; }
mktempdir d
TTL=4
HOST=www.example.org
LOOKUP="/v1/lookup?host=$HOST&port=80"

"$FED" keygen -o "$d/authority.key" >/dev/null
"$FED" pubkey "$d/authority.key" >"$d/authority.pub"
PUB=$(cat "$d/authority.pub")
start_authority "$d/auth" --key "$d/authority.key" --answer-ttl $TTL ||
	{ not_ok "the authority starts with --key"; exit 1; }
SIGNED=$AUTH SIGNED_ADMIN=$ADMIN_KEY

# the service: an owner and two peers, a base and a kernel, a snapshot;
# peer 1 serves it at a plain web server
for k in owner p1 p2; do
	"$FED" keygen -o "$d/$k.key" >/dev/null
	"$AC" "$AUTH" POST /v1/peers --key "$d/$k.key" \
		--body '{"addr":"127.0.0.1:7000"}' >/dev/null
done
for kind in base kernel; do
	echo "$kind $RANDOM$RANDOM" >"$d/$kind"
	"$FED" trust add "$d/$kind" --kind $kind --authority "$AUTH" \
		--key "$ADMIN_KEY" >/dev/null
done
bsum=$(sha256sum <"$d/base" | cut -c1-64)
ksum=$(sha256sum <"$d/kernel" | cut -c1-64)
sid=$("$AC" "$AUTH" announce "$HOST:80,1,$bsum,$ksum" --key "$d/owner.key" |
	cut -d' ' -f2- | jq -r .id)
mkdir -p "$d/www"
echo "page $RANDOM$RANDOM" >"$d/www/index.html"
listening() { ss -Hltn "sport = :$1" | grep -q .; }
web_port=$(free_port)
python3 -m http.server "$web_port" --bind 127.0.0.1 --directory "$d/www" \
	>/dev/null 2>&1 &
on_exit "kill $!"
wait_for 10 listening "$web_port" || not_ok "the peer's web server starts"
commit_up() {	# commit_up KEY PORT
	"$AC" "$AUTH" POST /v1/commitments --key "$1" \
		--body "{\"snapshot\":\"$sid\",\"up\":true,\"addr\":\"127.0.0.1\",\"port\":$2}" |
		grep -q '^20[01] '
}
check "a service with one peer up" commit_up "$d/p1.key" "$web_port"

fails() { ! "$@"; }
lookup() {	# lookup AUTHORITY [options]: fed lookup of the service
	local a=$1
	shift
	"$FED" lookup "$HOST:80" --authority "$a" "$@"
}

# ---- the live authority ----
out=$(lookup "$SIGNED" --authority-key "$d/authority.pub" 2>"$d/err")
check "fed lookup --authority-key (a file) accepts the live answer" \
	grep -q "^source: authority (ttl 30s, signed, version [0-9]*, valid until" <<<"$out"
check "and lists the peer" grep -q "^127.0.0.1 $web_port " <<<"$out"
check "the key may be given as hex" \
	bash -c "'$FED' lookup '$HOST:80' --authority '$SIGNED' --authority-key '$PUB' >/dev/null"
check "without --authority-key the answer is taken as before" \
	bash -c "'$FED' lookup '$HOST:80' --authority '$SIGNED' | grep -q '^127.0.0.1 $web_port '"
check "the DNS fallback of an unknown name is signed and verifies" \
	bash -c "'$FED' lookup localhost:80 --authority '$SIGNED' --authority-key '$PUB' | grep -q '^source: dns'"
check "fed get --authority-key fetches through the peer" \
	"$FED" get "http://$HOST/index.html" --authority "$SIGNED" \
	--authority-key "$PUB" --cache "$d/cache-get" -o "$d/got"
check "the page is the peer's" cmp -s "$d/got" "$d/www/index.html"
proxy_port=$(free_port)
"$FED" proxy --listen "127.0.0.1:$proxy_port" --authority "$SIGNED" \
	--authority-key "$PUB" --cache "$d/cache-proxy" 2>"$d/proxy.log" &
on_exit "kill $!"
wait_for 10 listening "$proxy_port" || not_ok "fed proxy starts"
check "fed proxy --authority-key serves it through the peer" \
	bash -c "curl -fsS -x http://127.0.0.1:$proxy_port http://$HOST/index.html | cmp -s - '$d/www/index.html'"

# ---- an authority without a key ----
start_authority "$d/auth2" || not_ok "an unsigned authority starts"
UNSIGNED=$AUTH
AUTH=$SIGNED ADMIN_KEY=$SIGNED_ADMIN	# the signed one's, from here on
lookup "$UNSIGNED" --authority-key "$PUB" >/dev/null 2>"$d/err"
check "an unsigned answer is refused" grep -q "'signature' is missing" "$d/err"
"$FED" lookup localhost:80 --authority "$UNSIGNED" --authority-key "$PUB" \
	>"$d/out" 2>"$d/err"
check "so is an unsigned DNS fallback (no downgrade to DNS)" \
	bash -c "grep -q \"'signature' is missing\" '$d/err' && ! grep -q '^source: dns' '$d/out'"

# ---- a replay: a server in the middle answers what it saved ----
replay_port=$(free_port)
serve_file "$replay_port" "$d/serve.json"
REPLAY=http://127.0.0.1:$replay_port
curl -fsS "$SIGNED$LOOKUP" >"$d/saved.json"
cp "$d/saved.json" "$d/serve.json"
wait_for 10 listening "$replay_port" || not_ok "the replaying server starts"

check "a replayed answer within its validity is used" \
	bash -c "'$FED' lookup '$HOST:80' --authority '$REPLAY' --authority-key '$PUB' >/dev/null"
# one byte: the café router's own address for the peer's
sed "s/127\.0\.0\.1/127.0.0.9/" "$d/saved.json" >"$d/serve.json"
cmp -s "$d/saved.json" "$d/serve.json" && not_ok "the answer was altered"
lookup "$REPLAY" --authority-key "$PUB" >"$d/out" 2>"$d/err"
check "an altered answer is refused: bad signature" \
	grep -q "lookup answer for $HOST:80 refused: bad signature" "$d/err"
check "and no peer is printed" fails grep -q '127.0.0.9' "$d/out"
check "without --authority-key the altered answer would be taken" \
	bash -c "'$FED' lookup '$HOST:80' --authority '$REPLAY' | grep -q '^127.0.0.9 '"

# rollback: the client holds a newer answer (two peers), the replay is
# the older one (one peer)
check "a second peer comes up" commit_up "$d/p2.key" "$web_port"
check "fed get caches the newer answer" \
	"$FED" get "http://$HOST/index.html" --authority "$SIGNED" \
	--authority-key "$PUB" --cache "$d/cache-rb" -o /dev/null
cf=$d/cache-rb/lookup/$HOST:80.json
# past its ttl (not its validity) the client asks again
jq -c '.fetched -= 100' "$cf" >"$cf.new" && mv "$cf.new" "$cf"
cp "$d/saved.json" "$d/serve.json"
"$FED" get "http://$HOST/index.html" --authority "$REPLAY" --authority-key "$PUB" \
	--cache "$d/cache-rb" -o /dev/null 2>"$d/err"
check "the older answer replayed is refused as a rollback" \
	grep -q "is older than version .* already held (a rollback)" "$d/err"

# freeze: the saved answer, replayed past its validity
expired() { ! lookup "$REPLAY" --authority-key "$PUB" >/dev/null 2>"$d/err"; }
check "past --answer-ttl the replayed answer is refused" wait_for $((TTL + 10)) expired
check "saying it expired and how long ago" \
	grep -q "lookup answer for $HOST:80 expired [0-9]* seconds\? ago (issued " "$d/err"
check "that the authority or a replay is stale, and what --allow-stale does" \
	grep -q "the authority or a replay is stale; --allow-stale uses it anyway" "$d/err"
out=$(lookup "$REPLAY" --authority-key "$PUB" --allow-stale 2>"$d/err")
check "--allow-stale uses it" grep -q "^127.0.0.1 $web_port " <<<"$out"
check "and says so on stderr" grep -q "using an expired one (--allow-stale)" "$d/err"
"$FED" get "http://$HOST/index.html" --authority "$REPLAY" --authority-key "$PUB" \
	--cache "$d/cache-freeze" -o /dev/null 2>"$d/err"
check "fed get says why it refuses the expired answer" \
	grep -q "fed: get .*lookup answer for $HOST:80 expired" "$d/err"
check "--allow-stale without --authority-key is a usage error" \
	bash -c "'$FED' lookup '$HOST:80' --authority '$SIGNED' --allow-stale 2>&1 | grep -q 'needs --authority-key'"

# ---- fedfs: the sources answers decide whom a peer fetches from ----
MiB=1048576
head -c $((3 * MiB)) /dev/urandom >"$d/base.img"
big=$(sha256sum <"$d/base.img" | cut -c1-64)
"$FED" trust add "$d/base.img" --kind base --authority "$AUTH" --key "$ADMIN_KEY" >/dev/null
start_fedfs owner 127.0.0.1 "$d" --authority-key "$PUB"
cp "$d/base.img" "$MNT_owner/publish/"
start_fedfs peer 127.0.0.2 "$d" --authority-key "$d/authority.pub"
check "fedfs --authority-key reads a base through verified sources" \
	wait_for 20 cmp "$MNT_peer/bases/$big" "$d/base.img"
"$FED" keygen -o "$d/other.key" >/dev/null
start_fedfs liar 127.0.0.3 "$d" --authority-key "$("$FED" pubkey "$d/other.key")"
timeout 20 cat "$MNT_liar/bases/$big" >"$d/liar.read" 2>/dev/null &
on_exit "kill $!"
check "a fedfs pinning another key does not use the sources answer" \
	wait_for 20 grep -q "sources answer for $big refused: signed by key .*, not the pinned authority key" \
	"$d/liar.state/fedfs.log"
check "fedfs --allow-stale without --authority-key is refused" \
	bash -c "'$BINDIR/fedfs' '$d/x' --state '$d/x' --authority '$AUTH' --key '$d/other.key' --serve 127.0.0.1:1 --allow-stale 2>&1 | grep -q 'needs --authority-key'"

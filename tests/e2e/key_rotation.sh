#!/usr/bin/env bash
# Owner key rotation end to end (issue 21; docs/authority-api.md, "Owner
# keys"): a real fed-authority and a fedfs peer that never heard of the
# owner's keys.  The owner publishes version 1 with its first key, rotates
# it (fed key rotate), and publishes version 2 with the new key: the
# authority refuses the old key, and the peer's services/ moves to version
# 2 (a peer takes a service's versions from the authority's catalogue, the
# one place that knows the chain).  Then the admin revokes the new key as
# stolen (fed key revoke): nobody can announce until the admin confirms a
# third key (fed key confirm), whose version 3 the peer takes.  The chain
# survives an authority restart.  Snapshots are written with
# tests/tools/authcall, the peer is a real fedfs mount.
source "$(dirname "$0")/lib.sh"

AC=$ROOT/${BUILD:-build}/tests/tools/authcall
[ -x "$AC" ] || { not_ok "$AC is built (make check builds it)"; exit 1; }
mktempdir d
SVC=www.example.org:80
fails() { ! "$@"; }

start_authority "$d/auth" || { not_ok "the authority starts"; exit 1; }
for k in k1 k2 k3; do
	"$FED" keygen -o "$d/$k.key" >/dev/null
	"$AC" "$AUTH" POST /v1/peers --key "$d/$k.key" \
		--body '{"addr":"127.0.0.1:7000"}' >/dev/null
done
pub() { "$FED" pubkey "$d/$1.key"; }
for kind in base kernel; do
	echo "$kind $RANDOM$RANDOM" >"$d/$kind"
	"$FED" trust add "$d/$kind" --kind $kind --authority "$AUTH" \
		--key "$ADMIN_KEY" >/dev/null
done
bsum=$(sha256sum <"$d/base" | cut -c1-64)
ksum=$(sha256sum <"$d/kernel" | cut -c1-64)
# announce KEY VERSION: the status and the id ("201 <id>")
announce() {
	local out
	out=$("$AC" "$AUTH" announce "$SVC,$2,$bsum,$ksum" --key "$d/$1.key")
	echo "${out%% *} $(cut -d' ' -f2- <<<"$out" | jq -r '.id // .error')"
}
# the peer's services/ names snapshot ID (a listing asks for news)
peer_serves() {
	ls "$MNT_peer/services" >/dev/null 2>&1
	test "$(readlink "$MNT_peer/services/$SVC")" = "../deltas/$1.fedsnap"
}

read -r st id1 < <(announce k1 1)
check "the first key announces version 1" test "$st" = 201
start_fedfs peer 127.0.0.2 "$d" || { not_ok "the peer's fedfs starts"; exit 1; }
check "the peer lists version 1" wait_for 20 peer_serves "$id1"

check "fed key rotate names the new key" \
	bash -c "'$FED' key rotate --key '$d/k1.key' --new '$d/k2.key' --authority '$AUTH' | grep -q '$(pub k2)'"
read -r st msg < <(announce k1 2)
check "the old key is refused after the rotation, naming its successor" \
	test "$st" = 403 -a -n "$(grep "was rotated to $(pub k2)" <<<"$msg")"
read -r st id2 < <(announce k2 2)
check "the new key announces version 2 of the service" test "$st" = 201
check "the peer takes the new key's version 2" wait_for 20 peer_serves "$id2"

check "fed key revoke (the admin) freezes the new key's services" \
	bash -c "'$FED' key revoke '$(pub k2)' --key '$ADMIN_KEY' --authority '$AUTH' | grep -q frozen"
read -r st msg < <(announce k2 3)
check "a revoked key announces nothing" test "$st" = 403
read -r st msg < <(announce k3 3)
check "nor does any other key: the service is frozen" \
	test "$st" = 403 -a -n "$(grep "is frozen" <<<"$msg")"
check "the peer still lists version 2" peer_serves "$id2"

kill "$AUTH_PID"
wait_for 10 gone "$AUTH_PID"
start_authority "$d/auth" || not_ok "the authority starts again"
read -r st msg < <(announce k1 3)
check "after a restart the old key is still refused" test "$st" = 403
check "fed key show follows the chain to the frozen key" \
	bash -c "'$FED' key show '$(pub k1)' --authority '$AUTH' | grep -q frozen"
check "fed key confirm (the admin) names the successor" \
	bash -c "'$FED' key confirm '$(pub k2)' --successor '$(pub k3)' --key '$ADMIN_KEY' --authority '$AUTH' | grep -q '$(pub k3)'"
read -r st id3 < <(announce k3 3)
check "the confirmed key announces version 3" test "$st" = 201
# the peer was pointed at the first authority's port
kill -9 "$PID_peer"
fusermount3 -u -z "$MNT_peer"
start_fedfs peer 127.0.0.2 "$d" || not_ok "the peer's fedfs starts again"
check "the peer takes the confirmed key's version 3" wait_for 20 peer_serves "$id3"
check "fed key show follows the chain to the third key" \
	bash -c "'$FED' key show '$(pub k1)' --authority '$AUTH' | grep -q 'owned by $(pub k3)'"

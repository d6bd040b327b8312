#!/usr/bin/env bash
# Liveness end to end (docs/authority-api.md, "Liveness" and "Forgetting"):
# an authority with a short peer ttl (6 s) and forgetting (12 s), an owner
# and a peer.  The peer reads a base and becomes a source of it; frozen
# (SIGSTOP) it stops refreshing, leaves the sources, and is forgotten with
# its holding; thawed, fedfs finds itself registered anew and announces
# again what it holds, and is a source again.
source "$(dirname "$0")/lib.sh"

mktempdir d
MiB=1048576

start_authority "$d/auth" --peer-ttl 6 --forget-after 12 ||
	{ not_ok "the authority starts"; exit 1; }
head -c $((3 * MiB)) /dev/urandom >"$d/base.img"
bsum=$(sha256sum <"$d/base.img" | cut -c1-64)
"$FED" trust add "$d/base.img" --kind base --authority "$AUTH" --key "$ADMIN_KEY" >/dev/null
start_fedfs owner 127.0.0.1 "$d"
cp "$d/base.img" "$MNT_owner/publish/"
start_fedfs peer 127.0.0.2 "$d"
peer_pub=$("$FED" pubkey "$KEY_peer")

# sources_has PEER: the authority lists PEER as a source of the base
sources_has() {
	curl -fsS "$AUTH/v1/sources/$bsum" |
		jq -e --arg p "$1" '.sources | any(.peer == $p)' >/dev/null
}
peer_known() { curl -fsS -o /dev/null "$AUTH/v1/peers/$peer_pub" 2>/dev/null; }

check "the peer reads the base (from the owner)" \
	wait_for 20 cmp "$MNT_peer/bases/$bsum" "$d/base.img"
check "and becomes a source of it" wait_for 10 sources_has "$peer_pub"
holdings() { curl -fsS "$AUTH/metrics" | awk '$1 == "fed_authority_holdings" { print $2 }'; }
check "two hold it (the owner published it)" test "$(holdings)" = 2

kill -STOP "$PID_peer"
on_exit "kill -CONT $PID_peer"
check "frozen, it leaves the sources within the peer ttl" \
	wait_for 20 sh -c "! curl -fsS '$AUTH/v1/sources/$bsum' | jq -e --arg p '$peer_pub' '.sources | any(.peer == \$p)' >/dev/null"
check "then the authority forgets it" \
	wait_for 40 sh -c "! curl -fsS -o /dev/null '$AUTH/v1/peers/$peer_pub' 2>/dev/null"
check "and its holding (the owner's stays)" test "$(holdings)" = 1
check "the owner, who owns nothing but talks, is kept" \
	curl -fsS -o /dev/null "$AUTH/v1/peers/$("$FED" pubkey "$KEY_owner")"

kill -CONT "$PID_peer"
check "thawed, the peer registers again" wait_for 20 peer_known
check "says it was forgotten" \
	wait_for 10 grep -q 'the authority had forgotten this peer' "$d/peer.state/fedfs.log"
check "and is a source of the base again without reading it" \
	wait_for 10 sources_has "$peer_pub"

#!/usr/bin/env bash
# Two authorities over one PostgreSQL database, a primary with a
# synchronous standby (tests/lib/pg.sh), and the primary's machine dying
# (kill -9 of its postmaster) right after the last write was acknowledged:
#
#   1. writes (peers, trusted hashes, snapshots, commitments) through both
#      authorities, alternately, each acknowledged;
#   2. kill -9 the primary;
#   3. while there is no primary: /healthz says it cannot write, writes get
#      503 with Retry-After, reads are answered (from the standby), and
#      nothing hangs;
#   4. promote the standby: writes work again within seconds, through both;
#   5. every acknowledged write is there, read through both.
#
# The authorities know the database by one URI naming both hosts
# (target_session_attrs=read-write finds the primary).  Their clients'
# view of several authorities: e2e/authority_failover.sh.
source "$(dirname "$0")/lib.sh"
PG=$ROOT/tests/lib/pg.sh
AUTHCALL=$ROOT/build/tests/tools/authcall

mktempdir d
on_exit "bash '$PG' stop '$d/db1'; bash '$PG' stop '$d/db2'"
bash "$PG" start "$d/db1" >/dev/null || { not_ok "the primary starts"; exit 1; }
bash "$PG" standby "$d/db1" "$d/db2" >/dev/null ||
	{ not_ok "the synchronous standby starts"; exit 1; }
P1=$(cat "$d/db1/port") P2=$(cat "$d/db2/port")
psql -qAt "$(bash "$PG" uri "$d/db1")" -c "CREATE DATABASE fed" >/dev/null
URI="postgresql://postgres@127.0.0.1:$P1,127.0.0.1:$P2/fed"
ok "a primary (:$P1) and its synchronous standby (:$P2)"

start_authority "$d/a1" --db "$URI" || { not_ok "authority 1 starts"; exit 1; }
A1=$AUTH
mkdir -p "$d/a2"
cp "$d/a1/admin.key" "$d/a2/admin.key"	# one admin for both
start_authority "$d/a2" --db "$URI" || { not_ok "authority 2 starts"; exit 1; }
A2=$AUTH

# call URL METHOD PATH KEY BODY: the HTTP status of a signed call
call() {
	"$AUTHCALL" "$1" "$2" "$3" --key "$4" --body "$5" 2>>"$d/calls.err" |
		tee -a "$d/calls.log" | cut -d' ' -f1
}
acked() { [ "${1:-0}" -ge 200 ] && [ "${1:-0}" -lt 300 ]; }

# --- 1. acknowledged writes through both -----------------------------------
N=4
lost_acks=0
for i in $(seq 1 $N); do
	if [ $((i % 2)) = 1 ]; then A=$A1 B=$A2; else A=$A2 B=$A1; fi
	"$FED" keygen -o "$d/owner$i.key" >/dev/null
	"$FED" keygen -o "$d/peer$i.key" >/dev/null
	owner[$i]=$("$FED" pubkey "$d/owner$i.key")
	peer[$i]=$("$FED" pubkey "$d/peer$i.key")
	st=$(call "$A" POST /v1/peers "$d/owner$i.key" "{\"addr\":\"127.0.1.$i:7000\"}")
	acked "$st" || lost_acks=$((lost_acks + 1))
	st=$(call "$B" POST /v1/peers "$d/peer$i.key" "{\"addr\":\"127.0.2.$i:7000\"}")
	acked "$st" || lost_acks=$((lost_acks + 1))
	echo "base $i $RANDOM$RANDOM" >"$d/base$i"
	echo "kernel $i $RANDOM$RANDOM" >"$d/kernel$i"
	base[$i]=$(sha256sum <"$d/base$i" | cut -c1-64)
	kernel[$i]=$(sha256sum <"$d/kernel$i" | cut -c1-64)
	"$FED" trust add "$d/base$i" --kind base --authority "$A" \
		--key "$d/a1/admin.key" >/dev/null || lost_acks=$((lost_acks + 1))
	"$FED" trust add "$d/kernel$i" --kind kernel --authority "$B" \
		--key "$d/a1/admin.key" >/dev/null || lost_acks=$((lost_acks + 1))
	out=$("$AUTHCALL" "$A" announce "svc$i.example:80,1,${base[$i]},${kernel[$i]}" \
		--key "$d/owner$i.key")
	snap[$i]=$(jq -r .id <<<"${out#* }")
	acked "${out%% *}" || lost_acks=$((lost_acks + 1))
	st=$(call "$B" POST /v1/commitments "$d/peer$i.key" \
		"{\"snapshot\":\"${snap[$i]}\",\"up\":true,\"addr\":\"192.0.2.$i\",\"port\":4000$i}")
	acked "$st" || lost_acks=$((lost_acks + 1))
done
check "$((N * 7)) writes through both authorities, each acknowledged" test $lost_acks = 0

# --- 2. the primary's machine dies, right after the last acknowledgement --
bash "$PG" kill "$d/db1"
killed=$SECONDS

# --- 3. no primary ----------------------------------------------------------
not_writable() { curl -fsS -m 5 "$1/healthz" | jq -e '.store.writable == false' >/dev/null; }
check "/healthz on both says it cannot write" \
	bash -c "$(declare -f wait_for not_writable); wait_for 10 not_writable '$A1' && wait_for 10 not_writable '$A2'"

"$FED" keygen -o "$d/late.key" >/dev/null
body='{"addr":"127.0.3.1:7000"}'
mapfile -t hdr < <("$AUTHCALL" sign POST /v1/peers --key "$d/late.key" --body "$body")
t0=$(date +%s%N)
curl -sS -m 20 -i -X POST "${hdr[@]/#/-H}" --data-binary "$body" \
	"$A1/v1/peers" >"$d/nowrite.txt" 2>&1
took_ms=$((($(date +%s%N) - t0) / 1000000))
check "a write gets 503" grep -q '^HTTP/1.1 503' "$d/nowrite.txt"
check "with Retry-After" grep -qi '^Retry-After: [0-9]' "$d/nowrite.txt"
check "and an answer at once (${took_ms} ms, limit 5000)" test "$took_ms" -lt 5000

t0=$(date +%s%N)
check "a read no cache holds is answered (the trusted base, from the standby)" \
	bash -c "curl -fsS -m 10 '$A2/v1/trusted/${base[1]}' | jq -e '.revoked == false' >/dev/null"
check "a lookup is answered" \
	bash -c "curl -fsS -m 10 '$A1/v1/lookup?host=svc2.example&port=80' | grep -q ${peer[2]}"
took_ms=$((($(date +%s%N) - t0) / 1000000))
check "reads did not hang (${took_ms} ms for both, limit 10000)" test "$took_ms" -lt 10000

# --- 4. promotion ----------------------------------------------------------
bash "$PG" promote "$d/db2"
promoted=$SECONDS
"$FED" keygen -o "$d/after.key" >/dev/null
# a new body each time: the same request signed in the same second would
# be the same signature, a replay
tries=0
writes_again() {
	tries=$((tries + 1))
	acked "$(call "$1" POST /v1/peers "$d/after.key" "{\"addr\":\"127.0.4.$tries:7000\"}")"
}
check "a write through authority 1 works again within 20 s of the promotion" \
	wait_for 20 writes_again "$A1"
back=$SECONDS
# authority 2 looks for the primary again within PG_RETRY_MS (1 s)
check "and through authority 2, within 10 s" wait_for 10 writes_again "$A2"
echo "# $((back - killed)) s from the primary's death to the first write after promotion ($((back - promoted)) s after it)"
check "/healthz says writable, on the standby's port" \
	bash -c "curl -fsS '$A1/healthz' | jq -e '.store.writable == true and (.store.host | endswith(\":$P2\"))' >/dev/null"

# --- 5. every acknowledged write is there, through both ---------------------
missing=0
for A in "$A1" "$A2"; do
	for i in $(seq 1 $N); do
		for k in "${owner[$i]}" "${peer[$i]}"; do
			curl -fsS "$A/v1/peers/$k" >/dev/null || { echo "# $A: no peer $k"; missing=$((missing + 1)); }
		done
		for h in "${base[$i]}" "${kernel[$i]}"; do
			curl -fsS "$A/v1/trusted/$h" >/dev/null || { echo "# $A: not trusted $h"; missing=$((missing + 1)); }
		done
		curl -fsS "$A/v1/snapshots/${snap[$i]}" >/dev/null ||
			{ echo "# $A: no snapshot ${snap[$i]}"; missing=$((missing + 1)); }
		curl -fsS "$A/v1/lookup?host=svc$i.example&port=80" | grep -q "${peer[$i]}" ||
			{ echo "# $A: svc$i's commitment is not in its lookup"; missing=$((missing + 1)); }
	done
done
check "every acknowledged write is there, read through both ($missing missing)" test $missing = 0

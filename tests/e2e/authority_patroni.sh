#!/usr/bin/env bash
# The production layout of docs/authority-ha.md, small: etcd (one member),
# two PostgreSQL servers managed by Patroni in synchronous mode, and an
# authority on the URI naming both.  The primary's machine dies (kill -9 of
# its Patroni and its postmaster, right after the last acknowledged write);
# Patroni promotes the standby by itself once the leader's key expires (ttl
# 20 s, Patroni's least); the authority finds the new primary through the
# URI, and every acknowledged write is there.
# (The same without Patroni, promotion by hand: e2e/authority_ha.sh.)
source "$(dirname "$0")/lib.sh"
AUTHCALL=$ROOT/build/tests/tools/authcall
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
for tool in patroni etcd; do
	command -v $tool >/dev/null ||
		{ not_ok "$tool is installed (scripts/deps.sh installs it)"; exit 1; }
done

mktempdir d
chmod 755 "$d"
as_pg() { runuser -u postgres -- "$@"; }

# --- etcd ----------------------------------------------------------------
EC=$(free_port)
while EP=$(free_port); [ "$EP" = "$EC" ]; do :; done
mkdir -p "$d/etcd"
etcd --name e1 --data-dir "$d/etcd" \
	--listen-client-urls "http://127.0.0.1:$EC" --advertise-client-urls "http://127.0.0.1:$EC" \
	--listen-peer-urls "http://127.0.0.1:$EP" --initial-advertise-peer-urls "http://127.0.0.1:$EP" \
	--initial-cluster "e1=http://127.0.0.1:$EP" >"$d/etcd.log" 2>&1 &
etcd_pid=$!
on_exit "kill -9 $etcd_pid"
etcd_up() { curl -fsS -m 1 "http://127.0.0.1:$EC/health" | grep -q true; }
wait_for 20 etcd_up || { not_ok "etcd starts"; tail "$d/etcd.log" | sed 's/^/# /'; exit 1; }

# --- two Patroni nodes -----------------------------------------------------
node_conf() {	# node_conf NAME PGPORT APIPORT
	local n=$1
	mkdir -p "$d/$n"
	cat >"$d/$n.yml" <<-EOF
	scope: fed-test-$$
	name: $n
	restapi:
	  listen: 127.0.0.1:$3
	  connect_address: 127.0.0.1:$3
	etcd3:
	  hosts: 127.0.0.1:$EC
	bootstrap:
	  dcs:
	    ttl: 20
	    loop_wait: 1
	    retry_timeout: 5
	    synchronous_mode: true
	    postgresql:
	      use_pg_rewind: false
	      parameters:
	        synchronous_commit: "on"
	        max_connections: 100
	  initdb:
	    - encoding: UTF8
	    - locale: C.UTF-8
	  pg_hba:
	    - host replication all 127.0.0.1/32 trust
	    - host all all 127.0.0.1/32 trust
	    - local all all trust
	postgresql:
	  listen: 127.0.0.1:$2
	  connect_address: 127.0.0.1:$2
	  data_dir: $d/$n/data
	  bin_dir: $PGBIN
	  pgpass: $d/$n/pgpass
	  authentication:
	    replication:
	      username: postgres
	    superuser:
	      username: postgres
	  parameters:
	    unix_socket_directories: $d/$n
	    shared_buffers: 32MB
	EOF
	chown -R postgres: "$d/$n" "$d/$n.yml"
}
ports=("$EC" "$EP")
new_port() {	# new_port VAR: a free port none of this test's took yet
	local p
	while p=$(free_port); [[ " ${ports[*]} " == *" $p "* ]]; do :; done
	ports+=("$p")
	printf -v "$1" '%s' "$p"
}
new_port P1; new_port P2; new_port R1; new_port R2
node_conf n1 "$P1" "$R1"
node_conf n2 "$P2" "$R2"
start_node() {	# start_node NAME: its pid in pid_NAME
	as_pg patroni "$d/$1.yml" >>"$d/$1.log" 2>&1 &
	eval "pid_$1=$!"
	on_exit "pkill -9 -f -- '$d/$1'"
}
start_node n1
role_of() { curl -fsS -m 1 "http://127.0.0.1:$1/patroni" 2>/dev/null | jq -r .role; }
is_primary() { [ "$(role_of "$1")" = master ] || [ "$(role_of "$1")" = primary ]; }
wait_for 60 is_primary "$R1" || { not_ok "Patroni bootstraps n1 as the primary"; tail "$d/n1.log" | sed 's/^/# /'; exit 1; }
start_node n2
# the leader's view: n2 replicates (Patroni 3.0 says "running") and is the
# standby every commit waits for
sync_standby() {
	curl -fsS -m 1 "http://127.0.0.1:$R1/cluster" 2>/dev/null |
		jq -e '.members[] | select(.name == "n2" and .role == "sync_standby"
			and (.state == "running" or .state == "streaming"))' >/dev/null
}
check "n2 streams from n1 as its synchronous standby" wait_for 60 sync_standby
psql -qAt "postgresql://postgres@127.0.0.1:$P1/postgres" -c "CREATE DATABASE fed" >/dev/null

# --- an authority on both --------------------------------------------------
start_authority "$d/a" --db "postgresql://postgres@127.0.0.1:$P1,127.0.0.1:$P2/fed" ||
	{ not_ok "the authority starts on Patroni's cluster"; exit 1; }
acked() { [ "${1:-0}" -ge 200 ] && [ "${1:-0}" -lt 300 ]; }
N=10 lost=0
for i in $(seq 1 $N); do
	"$FED" keygen -o "$d/peer$i.key" >/dev/null
	peer[$i]=$("$FED" pubkey "$d/peer$i.key")
	st=$("$AUTHCALL" "$AUTH" POST /v1/peers --key "$d/peer$i.key" \
		--body "{\"addr\":\"127.0.5.$i:7000\"}" | cut -d' ' -f1)
	acked "$st" || lost=$((lost + 1))
done
check "$N writes acknowledged" test $lost = 0

# --- n1's machine dies --------------------------------------------------------
pkill -9 -f -- "patroni $d/n1.yml"
head -n 1 "$d/n1/data/postmaster.pid" | xargs -r kill -9
killed=$(date +%s.%N)
"$FED" keygen -o "$d/after.key" >/dev/null
tries=0
writes_again() {
	tries=$((tries + 1))
	acked "$("$AUTHCALL" "$AUTH" POST /v1/peers --key "$d/after.key" \
		--body "{\"addr\":\"127.0.6.$((tries % 250)):7000\"}" | cut -d' ' -f1)"
}
check "Patroni promotes n2 by itself" wait_for 60 is_primary "$R2"
check "and the authority takes writes again" wait_for 30 writes_again
echo "# $(echo "$(date +%s.%N) - $killed" | bc -l | cut -c1-5) s from n1's death to the first write acknowledged (Patroni's ttl: 20 s)"
missing=0
for i in $(seq 1 $N); do
	curl -fsS "$AUTH/v1/peers/${peer[$i]}" >/dev/null || missing=$((missing + 1))
done
check "every acknowledged write is there ($missing missing)" test $missing = 0
check "/healthz: writable, on n2" \
	bash -c "curl -fsS '$AUTH/healthz' | jq -e '.store.writable == true and (.store.host | endswith(\":$P2\"))' >/dev/null"

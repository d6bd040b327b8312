#!/usr/bin/env bash
# cluster.sh - a federation of hosts on one machine, for the demo and the
# end-to-end tests.
#
#   scripts/cluster.sh up N        authority, owner, N peers and a client
#   scripts/cluster.sh down        remove everything (also after a crash)
#   scripts/cluster.sh exec HOST CMD...   run CMD on HOST's network
#   scripts/cluster.sh kill HOST   kill every process of HOST (a failure)
#   scripts/cluster.sh start HOST  start HOST's daemons again (same state)
#   scripts/cluster.sh promote db2 make the standby the primary (postgres)
#   scripts/cluster.sh env         the cluster's facts as shell variables,
#                                  FED_CLUSTER first (which cluster)
#   scripts/cluster.sh status      hosts, addresses, processes
#
# Each host is a network namespace with one veth into a bridge that lives in
# a namespace of its own (the "switch"), so nothing is added to this
# machine's own network and there is no route out.  Hosts and addresses:
#
#   auth     10.99.0.1   fed-authority on :8080
#   owner    10.99.0.2   fedfs (the owner publishes through it)
#   db1      10.99.0.4   with FED_CLUSTER_DB=postgres: the PostgreSQL
#   db2      10.99.0.5   primary and its synchronous standby, on :5432
#   client   10.99.0.3   nothing running; clients are run here with exec
#   pI       10.99.0.1I  fedfs (objects on :7000) + fed-vmrunner
#
# Processes run under `nsenter --net`, which keeps this machine's mount
# namespace: each host's fedfs mount (DIR/HOST/fed) is visible everywhere.
# `down` finds what to remove from the namespaces' names and DIR's mounts,
# not from a record that a crash could have left half-written.
#
# Environment: FED_CLUSTER (name prefix, default "fedc"; two clusters with
# different names live side by side), FED_CLUSTER_DIR (default
# /tmp/$FED_CLUSTER), BINDIR (default bin), FED_CLUSTER_BASE (a base image
# to use instead of building one, e.g. the Debian base), FED_CLUSTER_MEM
# (MiB each peer's machines get, default 48), FED_CLUSTER_BASE_CHUNK (the
# base's chunk size when the admin trusts it, default 1 MiB; peers fetch
# whole chunks, so a large base read lazily wants small ones),
# FED_UML_KERNEL (the UML kernel the admin trusts and the owner publishes;
# default fed's, as scripts/deps.sh installs it in /usr/local/lib/fed),
# FED_CLUSTER_DB (sqlite, the default: the authority's database is a file
# on auth; postgres: on db1 with a synchronous standby on db2, through a
# URI naming both, so `kill db1` and `promote db2` are a failover).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/scripts/lib.sh"
BINDIR=${BINDIR:-$ROOT/bin}
case $BINDIR in /*) ;; *) BINDIR=$ROOT/$BINDIR ;; esac
NAME=${FED_CLUSTER:-fedc}
DIR=${FED_CLUSTER_DIR:-${TMPDIR:-/tmp}/$NAME}
NET=10.99.0
# fed's UML kernel as scripts/deps.sh installs it
UML=${FED_UML_KERNEL:-${FED_LIBDIR:-/usr/local/lib/fed}/linux.uml}
AUTH_URL=http://$NET.1:8080
MEM=${FED_CLUSTER_MEM:-48}	# each peer's machines, MiB
BASE_CHUNK=${FED_CLUSTER_BASE_CHUNK:-1048576}	# the base's chunks, bytes
DB_KIND=${FED_CLUSTER_DB:-sqlite}
PG="bash $ROOT/tests/lib/pg.sh"

say() { printf 'cluster: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

usage() {
	sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
}

host_addr() {
	case $1 in
	auth) echo "$NET.1" ;;
	owner) echo "$NET.2" ;;
	client) echo "$NET.3" ;;
	db1) echo "$NET.4" ;;
	db2) echo "$NET.5" ;;
	p[0-9]*) echo "$NET.$((10 + ${1#p}))" ;;
	*) return 1 ;;
	esac
}

ns_of() { echo "$NAME-$1"; }

# on HOST CMD...: run CMD in HOST's network namespace
on() {
	local ns
	ns=$(ns_of "$1")
	shift
	nsenter --net="/run/netns/$ns" "$@"
}

# spawn HOST LOG CMD...: start a long-running CMD on HOST, in its own
# session, output to LOG
spawn() {
	local host=$1 log=$2
	shift 2
	on "$host" setsid "$@" >>"$log" 2>&1 </dev/null &
}


add_host() {	# add_host HOST: namespace, veth to the switch, address
	local host=$1 ns addr
	ns=$(ns_of "$host")
	addr=$(host_addr "$host")
	ip netns add "$ns"
	ip -n "$ns" link set lo up
	# made inside the switch, so names are per namespace: HOST on the
	# switch, eth0 on the host (nothing touches this machine's links)
	ip -n "$(ns_of sw)" link add "$host" type veth peer name eth0 netns "$ns"
	ip -n "$(ns_of sw)" link set "$host" master br0 up
	ip -n "$ns" addr add "$addr/24" dev eth0
	ip -n "$ns" link set eth0 up
	mkdir -p "$DIR/$host"
}

start_fedfs() {	# start_fedfs HOST
	local host=$1 addr
	addr=$(host_addr "$host")
	mkdir -p "$DIR/$host/fed" "$DIR/$host/fedfs"
	spawn "$host" "$DIR/$host/fedfs.log" "$BINDIR/fedfs" "$DIR/$host/fed" \
		--state "$DIR/$host/fedfs" --authority "$AUTH_URL" \
		--key "$DIR/$host/key" --serve "$addr:7000" -f
	wait_for 20 grep -q '"registered": true' "$DIR/$host/fed/.status" ||
		die "$host: fedfs did not register (see $DIR/$host/fedfs.log)"
}

# Each peer's machines get addresses of their own (10.(100+I).0.0/16): a
# QEMU machine's network namespace is named after its address, and all
# the hosts here share one machine's /run/netns.
start_vmrunner() {	# start_vmrunner HOST
	local host=$1
	mkdir -p "$DIR/$host/vmrunner"
	spawn "$host" "$DIR/$host/vmrunner.log" "$BINDIR/fed-vmrunner" \
		--fed "$DIR/$host/fed" --state "$DIR/$host/vmrunner" \
		--authority "$AUTH_URL" --key "$DIR/$host/key" \
		--public-addr "$(host_addr "$host")" --mem "$MEM" \
		--lease-range "10.$((100 + ${host#p})).0.0/16" -f
	wait_for 10 test -e "$DIR/$host/vmrunner/status.json" ||
		die "$host: vmrunner did not start (see $DIR/$host/vmrunner.log)"
}

# The authority's database: a file on auth, or (FED_CLUSTER_DB=postgres) a
# PostgreSQL primary on db1 and its synchronous standby on db2
start_databases() {
	local pg="PG_PORT=5432 PG_TRUST_NET=$NET.0/24"
	[ "$DB_KIND" = postgres ] || return 0
	env $pg PG_LISTEN="$NET.4" nsenter --net="/run/netns/$(ns_of db1)" \
		$PG start "$DIR/db1" >/dev/null || die "db1: PostgreSQL did not start"
	env $pg PG_LISTEN="$NET.5" nsenter --net="/run/netns/$(ns_of db2)" \
		$PG standby "$DIR/db1" "$DIR/db2" >/dev/null ||
		die "db2: the standby did not start"
}
db_arg() {
	if [ "$DB_KIND" = postgres ]; then
		echo "postgresql://postgres@$NET.4:5432,$NET.5:5432/postgres"
	else
		echo "$DIR/auth/auth.db"
	fi
}

start_authority() {
	spawn auth "$DIR/auth/authority.log" "$BINDIR/fed-authority" \
		--listen "$NET.1:8080" --db "$(db_arg)" \
		--admin-key "$DIR/admin.pub" --publish-allowance 10
	wait_for 10 on client curl -fsS --max-time 1 "$AUTH_URL/healthz" ||
		die "auth: the authority did not answer (see $DIR/auth/authority.log)"
}

cmd_up() {
	local n=${1:-} i host base dbs
	[[ $n =~ ^[1-9][0-9]?$ ]] && [ "$n" -le 40 ] ||
		die "up: need a number of peers, 1 to 40"
	[ "$(id -u)" = 0 ] || die "up: needs root (namespaces, taps, FUSE)"
	for f in fed fedfs fed-authority fed-vmrunner; do
		[ -x "$BINDIR/$f" ] || die "up: $BINDIR/$f is missing (run make)"
	done
	[ -x "$UML" ] || die "up: $UML is missing (scripts/deps.sh)"
	case $DB_KIND in sqlite | postgres) ;; *)
		die "up: FED_CLUSTER_DB is sqlite or postgres, not '$DB_KIND'" ;;
	esac
	ip netns list | grep -q "^$NAME-" &&
		die "up: cluster '$NAME' exists; run: $0 down"

	# a half-built cluster is removed, whatever failed
	trap 'say "up failed; removing what was built"; cmd_down' EXIT
	mkdir -p "$DIR"
	say "network: a switch and $((n + 3)) hosts (and the database's) on $NET.0/24 (no route out)"
	ip netns add "$(ns_of sw)"
	ip -n "$(ns_of sw)" link add br0 type bridge
	ip -n "$(ns_of sw)" link set br0 up
	dbs=
	[ "$DB_KIND" = postgres ] && dbs="db1 db2"
	for host in auth owner client $dbs $(seq -f 'p%g' 1 "$n"); do
		add_host "$host"
	done
	[ -n "$dbs" ] && say "db1, db2: PostgreSQL, a primary and its synchronous standby"
	start_databases

	say "auth: fed-authority at $AUTH_URL"
	"$BINDIR/fed" keygen -o "$DIR/admin.key" >/dev/null
	"$BINDIR/fed" pubkey "$DIR/admin.key" >"$DIR/admin.pub"
	start_authority

	base=${FED_CLUSTER_BASE:-}
	if [ -z "$base" ]; then
		say "base: building a reproducible base image (scripts/mkbase.sh)"
		base=$DIR/base.img
		bash "$ROOT/scripts/mkbase.sh" "$base" >/dev/null
	fi
	[ "$base" -ef "$DIR/base.img" ] || cp "$base" "$DIR/base.img"
	cp "$UML" "$DIR/kernel"
	say "auth: the admin trusts the UML kernel and the base"
	on client "$BINDIR/fed" trust add "$DIR/kernel" --kind kernel \
		--authority "$AUTH_URL" --key "$DIR/admin.key" >/dev/null
	on client "$BINDIR/fed" trust add "$DIR/base.img" --kind base \
		--chunk-size "$BASE_CHUNK" \
		--authority "$AUTH_URL" --key "$DIR/admin.key" >/dev/null

	for host in owner $(seq -f 'p%g' 1 "$n"); do
		"$BINDIR/fed" keygen -o "$DIR/$host/key" >/dev/null
		start_fedfs "$host"
	done
	say "owner: fedfs at $DIR/owner/fed, publishing kernel and base"
	cp "$DIR/kernel" "$DIR/base.img" "$DIR/owner/fed/publish/"
	for host in $(seq -f 'p%g' 1 "$n"); do
		start_vmrunner "$host"
		say "$host: fedfs at $DIR/$host/fed, vmrunner, address $(host_addr "$host")"
	done
	echo "$n" >"$DIR/peers"
	trap - EXIT
	say "up: $NAME with $n peers; $0 env for the details"
}

# every namespace of this cluster, whatever state it was left in
cluster_namespaces() {
	ip netns list | awk '{print $1}' | grep "^$NAME-" || true
}

cmd_down() {
	local ns pids mnt mnts deadline st
	# ask every process to stop (a vmrunner withdraws and stops its
	# machines), then kill what is left
	for ns in $(cluster_namespaces); do
		pids=$(ip netns pids "$ns" || true)
		[ -n "$pids" ] && kill $pids 2>/dev/null || true
	done
	deadline=$((SECONDS + 5))
	while [ $SECONDS -lt $deadline ]; do
		pids=
		for ns in $(cluster_namespaces); do
			pids+=$(ip netns pids "$ns" 2>/dev/null || true)
		done
		[ -z "$pids" ] && break
		sleep 0.1
	done
	for ns in $(cluster_namespaces); do
		pids=$(ip netns pids "$ns" || true)
		[ -n "$pids" ] && kill -9 $pids 2>/dev/null || true
	done
	# the peers' jailed machines live in namespaces of their own
	for st in "$DIR"/*/vmrunner; do
		[ -d "$st" ] && kill_jails "$st"
	done
	# FUSE mounts under DIR (a killed fedfs leaves its mount behind);
	# again until none is left, in case one was stacked on another
	for _ in 1 2 3; do
		mnts=$(awk -v d="$DIR/" 'index($2, d) == 1 {print $2}' /proc/mounts)
		[ -z "$mnts" ] && break
		for mnt in $mnts; do
			umount -l "$mnt" || fusermount3 -u -z "$mnt" || true
		done
	done
	for ns in $(cluster_namespaces); do
		ip netns del "$ns" 2>/dev/null || true
	done
	rm -rf "$DIR"
	say "down: $NAME removed"
}

cmd_kill() {	# every process on HOST, as a crash or power loss would
	local host=${1:-} ns pids
	[ -n "$host" ] || die "kill: which host?"
	ns=$(ns_of "$host")
	ip netns list | grep -q "^$ns\b" || die "kill: no host $host"
	pids=$(ip netns pids "$ns" || true)
	[ -n "$pids" ] && kill -9 $pids 2>/dev/null || true
	kill_jails "$DIR/$host/vmrunner"	# its machines, jailed elsewhere
	umount -l "$DIR/$host/fed" 2>/dev/null || true
	say "kill: $host is down"
}

cmd_start() {	# start HOST's daemons again after a kill (same keys, state)
	local host=${1:-}
	[ -f "$DIR/peers" ] || die "start: cluster '$NAME' is not up"
	case $host in
	auth) start_authority ;;
	owner) start_fedfs owner ;;
	db1 | db2)
		[ -d "$DIR/$host/data" ] || die "start: no host $host"
		die "start: $host's PostgreSQL is not restarted here: after a" \
			"failover the old primary must first be made a standby of" \
			"the new one (pg_rewind; docs/authority-ha.md)"
		;;
	p[0-9]*)
		[ -f "$DIR/$host/key" ] || die "start: no host $host"
		start_fedfs "$host"
		start_vmrunner "$host"
		;;
	*) die "start: no host '$host' (auth, owner, pN)" ;;
	esac
	say "start: $host is up"
}

cmd_env() {
	local host
	[ -f "$DIR/peers" ] || die "env: cluster '$NAME' is not up"
	echo "FED_CLUSTER=$NAME"
	echo "CLUSTER_DIR=$DIR"
	echo "CLUSTER_PEERS=$(cat "$DIR/peers")"
	echo "AUTH=$AUTH_URL"
	echo "AUTH_DB=$(db_arg)"
	echo "ADMIN_KEY=$DIR/admin.key"
	echo "ADDR_auth=$(host_addr auth)"
	echo "ADDR_client=$(host_addr client)"
	for host in owner $(seq -f 'p%g' 1 "$(cat "$DIR/peers")"); do
		echo "MNT_$host=$DIR/$host/fed"
		echo "KEY_$host=$DIR/$host/key"
		echo "ADDR_$host=$(host_addr "$host")"
	done
}

cmd_status() {
	local ns
	for ns in $(cluster_namespaces); do
		printf '%-14s %s\n' "$ns" \
			"$(ip netns pids "$ns" | xargs -r ps -o comm= -p | sort | uniq -c | xargs)"
	done
}

case ${1:-} in
up) shift; cmd_up "$@" ;;
down) cmd_down ;;
exec)
	[ $# -ge 3 ] || die "exec: need HOST and a command"
	host=$2
	shift 2
	host_addr "$host" >/dev/null || die "exec: no host $host"
	exec nsenter --net="/run/netns/$(ns_of "$host")" "$@"
	;;
kill) cmd_kill "${2:-}" ;;
promote)	# make db2 the primary (what Patroni does when db1 is gone)
	[ "${2:-}" = db2 ] && [ -d "$DIR/db2/data" ] || die "promote: only db2, the standby"
	$PG promote "$DIR/db2" && say "promote: db2 is the primary"
	;;
start) cmd_start "${2:-}" ;;
env) cmd_env ;;
status) cmd_status ;;
-h | --help | help) usage ;;
*) usage >&2; exit 2 ;;
esac

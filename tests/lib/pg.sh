#!/usr/bin/env bash
# pg.sh - throwaway PostgreSQL servers for the tests: a cluster in a
# directory of its own, run as user postgres, on 127.0.0.1 and a free port,
# with its socket in that directory.  Nothing of the machine's own
# PostgreSQL (if any) is touched.
#
#   pg.sh start DIR            initdb (if need be) and start; prints the URI
#   pg.sh standby PRIMARY DIR  a streaming standby of the server in PRIMARY,
#                              made synchronous for it; prints its URI
#   pg.sh uri DIR              the URI of the server in DIR
#   pg.sh promote DIR          make the standby in DIR the primary
#   pg.sh kill DIR             kill -9 its postmaster (a machine that dies)
#   pg.sh stop DIR             stop it at once (no checkpoint); idempotent
#
# The clusters trust local connections: they listen on loopback only and
# live for one test run.  scripts/cluster.sh runs them on hosts of its own
# instead, with PG_LISTEN (the address, default 127.0.0.1), PG_PORT (default
# a free one) and PG_TRUST_NET (who may connect, default 127.0.0.1/32).
set -eu
LISTEN=${PG_LISTEN:-127.0.0.1}
TRUST=${PG_TRUST_NET:-127.0.0.1/32}

PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
[ -x "$PGBIN/initdb" ] || { echo "pg.sh: no PostgreSQL (run scripts/deps.sh)" >&2; exit 2; }

as_pg() { runuser -u postgres -- "$@"; }

# A port nothing listens on, from the range the kernel does not hand out
# for outgoing connections.
free_port() {
	local p
	for _ in $(seq 1 100); do
		p=$((20000 + RANDOM % 12000))
		ss -Htln "sport = :$p" | grep -q . || { echo "$p"; return 0; }
	done
	echo "pg.sh: no free port" >&2
	return 1
}

# User postgres must reach DIR: open the way (o+x) through any parent it
# cannot pass (a test's mktemp directory is 0700).
reachable() {
	local d=$1
	while [ "$d" != / ]; do
		d=$(dirname "$d")
		as_pg test -x "$d" || chmod o+x "$d"
	done
}

host_of() { cat "$1/listen"; }
uri() { echo "postgresql://postgres@$(host_of "$1"):$(cat "$1/port")/postgres"; }

# Wait until the server in DIR takes connections (at most 30 s).
ready() {
	for _ in $(seq 1 300); do
		"$PGBIN/pg_isready" -q -h "$(host_of "$1")" -p "$(cat "$1/port")" && return 0
		sleep 0.1
	done
	echo "pg.sh: the server in $1 did not come up; its log:" >&2
	tail -n 20 "$1/log" >&2
	return 1
}

run() {	# run DIR: start the cluster in DIR/data on DIR/port
	local dir=$1
	as_pg "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 30 \
		-o "-p $(cat "$dir/port") -k $dir -c listen_addresses=$(host_of "$dir")" \
		start >/dev/null
	ready "$dir"
}

conf() {	# conf DIR: settings for a small, durable test server
	cat >>"$1/data/postgresql.conf" <<-EOF
	# pg.sh: a test server
	fsync = on
	synchronous_commit = on
	wal_level = replica
	max_wal_senders = 4
	max_connections = 200
	shared_buffers = 64MB
	EOF
	printf 'host all all %s trust\nhost replication all %s trust\n' \
		"$TRUST" "$TRUST" >>"$1/data/pg_hba.conf"
}

cmd_start() {
	local dir=$1
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	chown postgres: "$dir"
	reachable "$dir"
	if [ ! -f "$dir/data/PG_VERSION" ]; then
		as_pg "$PGBIN/initdb" -D "$dir/data" -A trust -U postgres \
			-E UTF8 --locale C.UTF-8 >"$dir/initdb.log" 2>&1 ||
			{ cat "$dir/initdb.log" >&2; exit 1; }
		conf "$dir"
	fi
	echo "$LISTEN" >"$dir/listen"
	[ -n "${PG_PORT:-}" ] && echo "$PG_PORT" >"$dir/port" || free_port >"$dir/port"
	run "$dir"
	uri "$dir"
}

cmd_standby() {
	local primary=$1 dir=$2 pport
	primary=$(cd "$primary" && pwd)
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	chown postgres: "$dir"
	reachable "$dir"
	pport=$(cat "$primary/port") phost=$(host_of "$primary")
	as_pg "$PGBIN/pg_basebackup" -h "$phost" -p "$pport" -U postgres \
		-D "$dir/data" -R -X stream >"$dir/basebackup.log" 2>&1 ||
		{ cat "$dir/basebackup.log" >&2; exit 1; }
	echo "primary_conninfo = 'host=$phost port=$pport user=postgres application_name=standby'" \
		>>"$dir/data/postgresql.auto.conf"
	echo "$LISTEN" >"$dir/listen"
	[ -n "${PG_PORT:-}" ] && echo "$PG_PORT" >"$dir/port" || free_port >"$dir/port"
	run "$dir"
	# the primary acknowledges a commit only once the standby has it
	as_pg "$PGBIN/psql" -qAt -h "$phost" -p "$pport" -U postgres -c \
		"ALTER SYSTEM SET synchronous_standby_names = 'standby'" \
		-c "SELECT pg_reload_conf()" >/dev/null
	for _ in $(seq 1 300); do
		[ "$(as_pg "$PGBIN/psql" -qAt -h "$phost" -p "$pport" -U postgres -c \
			"SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby'")" = sync ] &&
			{ uri "$dir"; return 0; }
		sleep 0.1
	done
	echo "pg.sh: the standby in $dir did not become synchronous" >&2
	exit 1
}

cmd_promote() {
	as_pg "$PGBIN/pg_ctl" -D "$1/data" -w -t 30 promote >/dev/null
}

cmd_kill() {
	local pid
	pid=$(head -n 1 "$1/data/postmaster.pid" 2>/dev/null) || return 0
	kill -9 "$pid" 2>/dev/null || true
	# its backends go when they find the postmaster gone; wait for them
	for _ in $(seq 1 100); do
		pgrep -f -- "-D $1/data" >/dev/null || pgrep -P "$pid" >/dev/null || return 0
		sleep 0.1
	done
}

cmd_stop() {
	[ -f "$1/data/postmaster.pid" ] || return 0
	as_pg "$PGBIN/pg_ctl" -D "$1/data" -m immediate -w -t 30 stop >/dev/null 2>&1 ||
		cmd_kill "$1"
}

case ${1:-} in
start) cmd_start "$2" ;;
standby) cmd_standby "$2" "$3" ;;
uri) uri "$2" ;;
promote) cmd_promote "$2" ;;
kill) cmd_kill "$2" ;;
stop) cmd_stop "$2" ;;
*) echo "usage: pg.sh start|standby|uri|promote|kill|stop DIR..." >&2; exit 2 ;;
esac

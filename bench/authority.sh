#!/usr/bin/env bash
# Benchmark: fed-authority lookups per second and p99 latency, side by side
# with /healthz on the same server in the same run.
#
#   bench/authority.sh [SERVICES] [COMMITMENTS] [SECONDS]
#                      (default 10000 100000 10)
#
# The database is filled by bench/authority_load.c straight through the
# store (SERVICES services, COMMITMENTS commitments spread evenly, all up;
# 2000 peers).  Then wrk, 64 connections, 2 threads, runs against /healthz
# and against /v1/lookup for a random one of the services each request
# (a Lua script, used for /healthz too so wrk's own cost is the same), each
# twice, alternating, after a warm-up; the better run of each is printed.
# A third row restarts the server with --no-lookup-cache and shows what a
# lookup costs when it is computed from SQLite (as right after a change).
# Goal (issue 3): lookups >= 80% of /healthz and >= 20 000 lookups/s.
#
# Then the same on PostgreSQL (issue 20), in the same run: a primary with
# a synchronous standby (tests/lib/pg.sh), the same rows loaded, lookups
# with one authority and with two (one wrk each, at once, summed), and
# without the cache; commitments written per second through HTTP on each
# store (bench/authority_write.c: signed, each a durable commit); and the
# seconds from the primary's kill -9, through the standby's promotion, to
# the first write acknowledged.  Goal: lookups on PostgreSQL >= 0.8x
# SQLite's.  Set FED_BENCH_NO_PG=1 to skip it.  A row with --key (issue
# 21: answers signed by the authority) against the unsigned one; goal
# >= 0.8x.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SERVICES=${1:-10000}
COMMITMENTS=${2:-100000}
SECS=${3:-10}
CONNS=64
WRITES=${FED_BENCH_WRITES:-2000}	# commitments written per store
PKGS="fuse3 libgcrypt libmicrohttpd zlib libcurl jansson sqlite3 libpq"
PG="bash $ROOT/tests/lib/pg.sh"
AC=$ROOT/build/tests/tools/authcall
work=$(mktemp -d "${TMPDIR:-/tmp}/fed-bench-authority.XXXXXX")
chmod 711 "$work"
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	$PG stop "$work/pg2" 2>/dev/null || true
	$PG stop "$work/pg1" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

command -v wrk >/dev/null || { echo "wrk is not installed (scripts/deps.sh)" >&2; exit 1; }
make -C "$ROOT" -s all build/tests/tools/authcall >/dev/null
for tool in authority_load authority_write; do
	# shellcheck disable=SC2046
	${CC:-cc} -std=c11 -O2 -Wall -Wextra -Werror -I"$ROOT/src" -D_GNU_SOURCE \
		$(pkg-config --cflags $PKGS) -o "$work/$tool" \
		"$ROOT/bench/$tool.c" "$ROOT/build/libauthority.a" \
		"$ROOT/build/libcommon.a" $(pkg-config --libs $PKGS) -pthread
done

# load DB: the rows every lookup run reads
load() {
	local start what
	start=$(date +%s.%N)
	"$work/authority_load" "$1" "$SERVICES" "$COMMITMENTS" 2000
	case $1 in postgres*) what=PostgreSQL ;; *) what=SQLite ;; esac
	echo "load into $what: $(echo "$(date +%s.%N) - $start" | bc -l | cut -c1-5) s"
}

# start_server NAME DB [OPTION...]: fed-authority on DB, its URL in
# url_NAME (the loaded commitments are never re-reported: --peer-ttl 0
# keeps them in the lookups however long the runs take)
start_server() {
	local name=$1 db=$2 deadline=$((SECONDS + 20))
	shift 2
	rm -f "$work/$name.port"
	"$ROOT/bin/fed-authority" --listen 127.0.0.1:0 --db "$db" --quiet \
		--per-ip-limit 1024 --peer-ttl 0 --signed-rate 0 \
		--port-file "$work/$name.port" "$@" 2>>"$work/$name.log" &
	pids+=($!)
	eval "pid_$name=$!"
	until [ -s "$work/$name.port" ]; do
		kill -0 "${pids[-1]}" 2>/dev/null || { cat "$work/$name.log" >&2; exit 1; }
		[ $SECONDS -lt $deadline ] || { echo "authority did not start" >&2; exit 1; }
		sleep 0.05
	done
	eval "url_$name=http://127.0.0.1:$(cat "$work/$name.port")"
}
stop_server() {	# stop_server NAME
	local p
	eval "p=\$pid_$1"
	kill "$p"; wait "$p" 2>/dev/null || true
}

# one lookup answers with the expected number of peers
check_lookup() {
	local want=$((COMMITMENTS / SERVICES)) got
	got=$(curl -sf "$1/v1/lookup?host=svc$((SERVICES / 2)).example.org&port=80" |
		grep -o '"peer"' | wc -l)
	[ "$got" -eq "$want" ] || { echo "lookup returned $got peers, expected $want" >&2; exit 1; }
}

cat >"$work/lookup.lua" <<EOF
math.randomseed(os.time())
request = function()
	return wrk.format("GET", "/v1/lookup?host=svc" .. math.random(0, $((SERVICES - 1))) .. ".example.org&port=80")
end
EOF
cat >"$work/healthz.lua" <<'EOF'
request = function()
	return wrk.format("GET", "/healthz")
end
EOF

# run NAME URL [THREADS CONNS] -> "req/s p99" (p99 in ms)
run() {
	local out rps p99
	out=$(wrk -t"${3:-2}" -c"${4:-$CONNS}" -d"${SECS}s" --latency -s "$work/$1.lua" "$2")
	if grep -q 'Non-2xx' <<<"$out"; then
		echo "wrk saw errors on $1:" >&2
		echo "$out" >&2
		exit 1
	fi
	rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
	p99=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000}
		else if (v ~ /ms$/) sub(/ms/,"",v);
		else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' <<<"$out")
	echo "$rps $p99"
}
best() {	# keep the line with the higher req/s
	awk '$1 > b {b = $1; l = $0} END {print l}'
}
warm() { wrk -t2 -c$CONNS -d2s -s "$work/lookup.lua" "$1" >/dev/null; }

# lookups DB: sets h (/healthz), l (lookups), u (without the cache), each
# "req/s p99"
lookups() {
	local h1 l1 h2 l2
	start_server one "$1"
	check_lookup "$url_one"
	warm "$url_one"
	h1=$(run healthz "$url_one"); l1=$(run lookup "$url_one")
	h2=$(run healthz "$url_one"); l2=$(run lookup "$url_one")
	h=$(printf '%s\n%s\n' "$h1" "$h2" | best)
	l=$(printf '%s\n%s\n' "$l1" "$l2" | best)
	stop_server one
	# computed from the store every time: a lookup right after a change
	start_server one "$1" --no-lookup-cache
	warm "$url_one"
	u=$(run lookup "$url_one")
	stop_server one
}

# signed DB -> "req/s p99": lookups with --key (issue 21): each cached
# answer is signed once, when it is computed, not per request
signed() {
	local a b
	start_server s "$1" --key "$work/authority.key"
	check_lookup "$url_s"
	warm "$url_s"
	a=$(run lookup "$url_s"); b=$(run lookup "$url_s")
	stop_server s
	printf '%s\n%s\n' "$a" "$b" | best
}

# two DB -> "req/s p99": two authorities on DB, one wrk each at once (half
# the connections each), the rates summed, the worse p99
two() {
	local a ap b bp
	start_server one "$1"; start_server two "$1"
	warm "$url_one"; warm "$url_two"
	run lookup "$url_one" 1 $((CONNS / 2)) >"$work/two.a" &
	run lookup "$url_two" 1 $((CONNS / 2)) >"$work/two.b"
	wait $!
	read -r a ap <"$work/two.a"
	read -r b bp <"$work/two.b"
	stop_server one; stop_server two
	echo "$(echo "$a + $b" | bc -l) $(printf '%s\n%s\n' "$ap" "$bp" | sort -g | tail -n 1)"
}

# writes DB -> "N commitments/s (...)": a fresh service on DB, WRITES
# peers committing to it through HTTP from 8 threads
writes() {
	local out snap base kernel
	start_server w "$1" --admin-key "$work/admin.pub"
	echo "base $RANDOM$RANDOM" >"$work/wbase"
	echo "kernel $RANDOM$RANDOM" >"$work/wkernel"
	"$ROOT/bin/fed" trust add "$work/wbase" --kind base --authority "$url_w" \
		--key "$work/admin.key" >/dev/null
	"$ROOT/bin/fed" trust add "$work/wkernel" --kind kernel --authority "$url_w" \
		--key "$work/admin.key" >/dev/null
	base=$(sha256sum <"$work/wbase" | cut -c1-64)
	kernel=$(sha256sum <"$work/wkernel" | cut -c1-64)
	"$AC" "$url_w" POST /v1/peers --key "$work/owner.key" \
		--body '{"addr":"10.8.0.1:7000"}' >/dev/null
	out=$("$AC" "$url_w" announce "write$RANDOM.example.org:80,1,$base,$kernel" \
		--key "$work/owner.key")
	snap=$(jq -r .id <<<"${out#* }")
	"$work/authority_write" "$url_w" "$snap" "$WRITES" 8
	stop_server w
}

# failover DB: seconds from the primary's kill -9 (then the standby's
# promotion, as Patroni would make it) to the first write acknowledged
failover() {
	local t0 deadline
	start_server f "$1"
	$PG kill "$work/pg1"
	t0=$(date +%s.%N)
	$PG promote "$work/pg2"
	deadline=$((SECONDS + 60))
	until [ "$("$AC" "$url_f" POST /v1/peers --key "$work/owner.key" \
		--body '{"addr":"10.8.0.2:7000"}' | cut -d' ' -f1)" = 200 ]; do
		[ $SECONDS -lt $deadline ] || { echo "no write within 60 s of the promotion" >&2; exit 1; }
		sleep 0.05
	done
	echo "$(date +%s.%N) - $t0" | bc -l
	stop_server f
}

"$ROOT/bin/fed" keygen -o "$work/admin.key" >/dev/null
"$ROOT/bin/fed" pubkey "$work/admin.key" >"$work/admin.pub"
"$ROOT/bin/fed" keygen -o "$work/owner.key" >/dev/null
"$ROOT/bin/fed" keygen -o "$work/authority.key" >/dev/null

load "$work/a.db"
lookups "$work/a.db"
sq_h=$h sq_l=$l sq_u=$u
sq_s=$(signed "$work/a.db")
sq_w=$(writes "$work/w.db")

pg=
if [ "${FED_BENCH_NO_PG:-0}" != 1 ] && $PG start "$work/pg1" >/dev/null &&
	$PG standby "$work/pg1" "$work/pg2" >/dev/null; then
	pg=yes
	PGDB="postgresql://postgres@127.0.0.1:$(cat "$work/pg1/port"),127.0.0.1:$(cat "$work/pg2/port")/postgres"
	load "$PGDB"
	lookups "$PGDB"
	pg_h=$h pg_l=$l pg_u=$u
	pg_two=$(two "$PGDB")
	pg_w=$(writes "$PGDB")
	pg_f=$(failover "$PGDB")
fi

row() {	# row LABEL "req/s p99" [NOTE]
	local r p
	read -r r p <<<"$2"
	printf '%-40s %12.0f %10.2f   %s\n' "$1" "$r" "$p" "${3:-}"
}
echo "fed-authority, $SERVICES services, $COMMITMENTS commitments, wrk -t2 -c$CONNS, ${SECS}s runs, $(nproc) cores"
printf '%-40s %12s %10s\n' endpoint "requests/s" "p99 ms"
row "/healthz (SQLite)" "$sq_h"
row "/v1/lookup (SQLite)" "$sq_l"
row "/v1/lookup (SQLite, no cache)" "$sq_u" "every lookup asks SQLite"
row "/v1/lookup (SQLite, signed answers)" "$sq_s" "--key: signed once per change"
if [ -n "$pg" ]; then
	row "/healthz (PostgreSQL)" "$pg_h"
	row "/v1/lookup (PostgreSQL)" "$pg_l"
	row "/v1/lookup (PostgreSQL, no cache)" "$pg_u" "every lookup asks PostgreSQL"
	row "/v1/lookup (PostgreSQL, 2 authorities)" "$pg_two" "summed; the worse p99"
fi
read -r hr _ <<<"$sq_h"
read -r lr _ <<<"$sq_l"
read -r su _ <<<"$sq_u"
echo "lookups: $(echo "scale=1; 100 * $lr / $hr" | bc -l)% of /healthz (goal >= 80%), $(printf '%.0f' "$lr")/s (goal >= 20000/s)"
read -r sr _ <<<"$sq_s"
echo "signed lookups: $(echo "scale=2; $sr / $lr" | bc -l)x unsigned (goal >= 0.8x)"
echo "commitments written, SQLite: $sq_w"
if [ -n "$pg" ]; then
	read -r pr _ <<<"$pg_l"
	read -r pu _ <<<"$pg_u"
	echo "lookups on PostgreSQL: $(echo "scale=2; $pr / $lr" | bc -l)x SQLite's with the cache (goal >= 0.8x), $(echo "scale=2; $pu / $su" | bc -l)x without"
	echo "commitments written, PostgreSQL with a synchronous standby: $pg_w"
	echo "failover: $(printf '%.2f' "$pg_f") s from the primary's kill -9 and the standby's promotion to the first write acknowledged"
else
	echo "PostgreSQL: skipped (FED_BENCH_NO_PG=1, or tests/lib/pg.sh could not start a server)"
fi

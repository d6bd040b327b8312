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
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SERVICES=${1:-10000}
COMMITMENTS=${2:-100000}
SECS=${3:-10}
CONNS=64
PKGS="fuse3 libgcrypt libmicrohttpd zlib libcurl jansson sqlite3"
work=$(mktemp -d "${TMPDIR:-/tmp}/fed-bench-authority.XXXXXX")
pid=
cleanup() {
	if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

command -v wrk >/dev/null || { echo "wrk is not installed (scripts/deps.sh)" >&2; exit 1; }
make -C "$ROOT" -s all >/dev/null
# shellcheck disable=SC2046
${CC:-cc} -std=c11 -O2 -Wall -Wextra -Werror -I"$ROOT/src" -D_GNU_SOURCE \
	$(pkg-config --cflags $PKGS) -o "$work/authority_load" \
	"$ROOT/bench/authority_load.c" "$ROOT/build/libauthority.a" \
	"$ROOT/build/libcommon.a" $(pkg-config --libs $PKGS) -pthread

start=$(date +%s.%N)
"$work/authority_load" "$work/a.db" "$SERVICES" "$COMMITMENTS" 2000
echo "load: $(echo "$(date +%s.%N) - $start" | bc -l | cut -c1-5) s"

# start_server [OPTION...]: (re)start fed-authority on the database (its
# commitments were written by authority_load and are never re-reported:
# --peer-ttl 0 keeps them in the lookups however long the runs take)
start_server() {
	if [ -n "$pid" ]; then kill "$pid"; wait "$pid" 2>/dev/null || true; fi
	rm -f "$work/port"
	"$ROOT/bin/fed-authority" --listen 127.0.0.1:0 --db "$work/a.db" --quiet \
		--per-ip-limit 1024 --peer-ttl 0 --port-file "$work/port" "$@" \
		2>>"$work/authority.log" &
	pid=$!
	local deadline=$((SECONDS + 20))
	until [ -s "$work/port" ]; do
		kill -0 "$pid" 2>/dev/null || { cat "$work/authority.log" >&2; exit 1; }
		[ $SECONDS -lt $deadline ] || { echo "authority did not start" >&2; exit 1; }
		sleep 0.05
	done
	url=http://127.0.0.1:$(cat "$work/port")
}
start_server

# one lookup answers with the expected number of peers
want=$((COMMITMENTS / SERVICES))
got=$(curl -sf "$url/v1/lookup?host=svc$((SERVICES / 2)).example.org&port=80" |
	grep -o '"peer"' | wc -l)
[ "$got" -eq "$want" ] || { echo "lookup returned $got peers, expected $want" >&2; exit 1; }

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

# run NAME -> "req/s p99" (p99 in ms)
run() {
	local out rps p99
	out=$(wrk -t2 -c$CONNS -d"${SECS}s" --latency -s "$work/$1.lua" "$url")
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

wrk -t2 -c$CONNS -d2s -s "$work/lookup.lua" "$url" >/dev/null	# warm-up
h1=$(run healthz); l1=$(run lookup); h2=$(run healthz); l2=$(run lookup)
h=$(printf '%s\n%s\n' "$h1" "$h2" | best)
l=$(printf '%s\n%s\n' "$l1" "$l2" | best)
# the same lookups computed from the store every time (no answer cache):
# what a lookup costs right after a change
start_server --no-lookup-cache
wrk -t2 -c$CONNS -d2s -s "$work/lookup.lua" "$url" >/dev/null	# warm-up
u=$(run lookup)
read -r hr hp <<<"$h"
read -r lr lp <<<"$l"
read -r ur up <<<"$u"
pct=$(echo "scale=1; 100 * $lr / $hr" | bc -l)

echo "fed-authority, $SERVICES services, $COMMITMENTS commitments, wrk -t2 -c$CONNS, ${SECS}s runs, $(nproc) cores"
printf '%-12s %12s %10s\n' endpoint "requests/s" "p99 ms"
printf '%-12s %12.0f %10.2f\n' /healthz "$hr" "$hp"
printf '%-12s %12.0f %10.2f\n' /v1/lookup "$lr" "$lp"
printf '%-12s %12.0f %10.2f   (--no-lookup-cache: every lookup asks SQLite)\n' /v1/lookup "$ur" "$up"
echo "lookups: $pct% of /healthz (goal >= 80%), $(printf '%.0f' "$lr")/s (goal >= 20000/s)"

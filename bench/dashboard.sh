#!/usr/bin/env bash
# Benchmark: the authority's dashboard with many services, and fed doctor.
#
#   bench/dashboard.sh [SERVICES] [COMMITMENTS]   (default 10000 20000)
#
# The database is filled by bench/authority_load.c (as bench/authority.sh).
# Figures: the time real headless Chromium takes from navigation to the
# first service row drawn (tests/e2e/dashboard_browser.py load); what one
# refresh costs the authority (the requests the page makes every 2 s, sent
# with curl one after another: GET /v1/snapshots, /v1/trusted and 100
# /v1/services/.../peers; wall time and the server's CPU seconds from
# /proc); the size of /v1/snapshots; and `fed doctor` run time (5 runs).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SERVICES=${1:-10000}
COMMITMENTS=${2:-20000}
PKGS="fuse3 libgcrypt libmicrohttpd zlib libcurl jansson sqlite3"
work=$(mktemp -d "${TMPDIR:-/tmp}/fed-bench-dashboard23.XXXXXX")
pid=
cleanup() {
	if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

make -C "$ROOT" -s all >/dev/null
# shellcheck disable=SC2046
${CC:-cc} -std=c11 -O2 -Wall -Wextra -Werror -I"$ROOT/src" -D_GNU_SOURCE \
	$(pkg-config --cflags $PKGS) -o "$work/authority_load" \
	"$ROOT/bench/authority_load.c" "$ROOT/build/libauthority.a" \
	"$ROOT/build/libcommon.a" $(pkg-config --libs $PKGS) -pthread
"$work/authority_load" "$work/a.db" "$SERVICES" "$COMMITMENTS" 2000 >/dev/null

"$ROOT/bin/fed-authority" --listen 127.0.0.1:0 --db "$work/a.db" --quiet \
	--peer-ttl 0 --port-file "$work/port" 2>>"$work/authority.log" &
pid=$!
for _ in $(seq 200); do [ -s "$work/port" ] && break; sleep 0.05; done
url=http://127.0.0.1:$(cat "$work/port")
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }	# clock ticks
hz=$(getconf CLK_TCK)

echo "fed dashboard, $SERVICES services, $COMMITMENTS commitments, $(nproc) cores"
size=$(curl -fsS "$url/v1/snapshots" | wc -c)
echo "/v1/snapshots: $size bytes"

# one refresh, as the page makes it (best of 3)
best=
for _ in 1 2 3; do
	c0=$(cpu); t0=$(date +%s.%N)
	{ echo "url = $url/v1/snapshots"; echo "url = $url/v1/trusted"
	  for i in $(seq 0 99); do echo "url = $url/v1/services/svc$i.example.org:80/peers"; done
	} | curl -fsS -K - -o /dev/null -o /dev/null $(printf -- '-o /dev/null %.0s' $(seq 100))
	t=$(echo "$(date +%s.%N) - $t0" | bc -l); c=$(( $(cpu) - c0 ))
	if [ -z "$best" ] || [ "$(echo "$t < $best" | bc -l)" = 1 ]; then best=$t; bcpu=$c; fi
done
printf 'one refresh (102 requests): %.3f s wall, %.2f s authority CPU\n' \
	"$best" "$(echo "$bcpu / $hz" | bc -l)"

c0=$(cpu)
out=$(/usr/bin/python3 "$ROOT/tests/e2e/dashboard_browser.py" "$url/" "$work" load svc0.example.org:80)
c=$(( $(cpu) - c0 ))
echo "page load in headless Chromium: ${out#ok load } to the first service row" \
	"(authority CPU during the whole browser run: $(echo "scale=2; $c / $hz" | bc -l) s)"

times=
for _ in 1 2 3 4 5; do
	t0=$(date +%s.%N)
	"$ROOT/bin/fed" doctor --authority "$url" --state "$work" >/dev/null || true
	times="$times $(printf '%.2f' "$(echo "$(date +%s.%N) - $t0" | bc -l)")"
done
echo "fed doctor (with the kernel probe and the authority):$times s"

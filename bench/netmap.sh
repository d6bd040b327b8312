#!/usr/bin/env bash
# Benchmark: the netmap relay (bin/fed-netmap relay) against connecting
# straight to the backend and against socat, in the same run, on loopback.
#
#   bench/netmap.sh [SECONDS] [ROUNDS]      (default 5 s, 3 rounds)
#
# Throughput: iperf3, one TCP stream for SECONDS, MB/s (10^6 bytes) at the
# receiver.  Connection rate: wrk (1 thread, 32 connections) against a
# tiny single-threaded epoll HTTP server built here that answers every
# request with 13 bytes and closes, so every request is a new connection:
# requests/s = connections/s.  Each round runs direct, relay, socat in turn;
# the table shows the median round.  The goal is relay >= 0.8x direct.
#
# The relay, the client and the server share the machine's cores: on a
# 2-core machine the relay's own TCP work competes with both ends, and the
# numbers move with whatever else runs (say so when quoting them).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
NETMAP=$ROOT/bin/fed-netmap
SECS=${1:-5}
ROUNDS=${2:-3}
for t in iperf3 wrk socat cc; do
	command -v $t >/dev/null || { echo "bench/netmap.sh: needs $t (scripts/deps.sh)" >&2; exit 1; }
done
[ -x "$NETMAP" ] || { echo "bench/netmap.sh: build first (make)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/fed-bench.XXXXXX")
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

listening() { (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; }
# serve VAR CMD...: run CMD with a port below the ephemeral range appended,
# until it listens there (a busy port makes CMD exit: try another); set VAR
# to the port
serve() {
	local var=$1 p pid i
	shift
	for _ in $(seq 50); do
		p=$((31000 + RANDOM % 1000))
		listening $p && continue
		"$@" $p >/dev/null 2>&1 &
		pid=$!
		for i in $(seq 100); do
			listening $p && { pids+=($pid); printf -v "$var" '%s' $p; return; }
			kill -0 $pid 2>/dev/null || break
			sleep 0.05
		done
		kill $pid 2>/dev/null || true
	done
	echo "bench/netmap.sh: could not start $1" >&2
	exit 1
}

# the tiny HTTP server: accept, read the request, answer, close
cat >"$work/hello.c" <<'EOF'
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
static const char reply[] = "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n"
	"Connection: close\r\n\r\nhello, world\n";
int main(int argc, char **argv) {
	struct sockaddr_in a = { .sin_family = AF_INET,
		.sin_port = htons(atoi(argv[1])), .sin_addr.s_addr = htonl(0x7f000001) };
	int one = 1, l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	int ep = epoll_create1(0);
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = l }, evs[64];
	char buf[4096];
	(void)argc;
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 4096)) return 1;
	epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
	for (;;) {
		int n = epoll_wait(ep, evs, 64, -1);
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			if (fd == l) {
				int c;
				while ((c = accept4(l, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
					struct epoll_event ce = { .events = EPOLLIN, .data.fd = c };
					epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
				}
				continue;
			}
			ssize_t r = read(fd, buf, sizeof(buf));
			if (r > 0 && memmem(buf, (size_t)r, "\r\n\r\n", 4) == NULL) continue;
			if (r > 0 && write(fd, reply, sizeof(reply) - 1) < 0) { /* gone */ }
			close(fd);
		}
	}
}
EOF
cc -O2 -D_GNU_SOURCE -o "$work/hello" "$work/hello.c"

serve iperf_port iperf3 -s -B 127.0.0.1 -p
serve http_port "$work/hello"

# relay and socat in front of each backend; each sets the variable named $2
# to the port it listens on
start_relay() {	# TARGET_PORT VAR   (also sets VAR_pid)
	local out=$work/relay.$1 i
	"$NETMAP" relay --listen 127.0.0.1:0 --to "127.0.0.1:$1" >"$out" 2>/dev/null &
	pids+=($!)
	printf -v "$2_pid" '%s' $!
	for i in $(seq 100); do
		grep -qE '^127\.0\.0\.1:[0-9]+$' "$out" 2>/dev/null && break
		sleep 0.05
	done
	printf -v "$2" '%s' "$(cut -d: -f2 "$out")"
}
socat_to() {	# TARGET_PORT LISTEN_PORT
	exec socat "TCP-LISTEN:$2,fork,reuseaddr,bind=127.0.0.1" "TCP:127.0.0.1:$1"
}
socat_big_to() {	# the same with socat's buffer as large as the relay's pipe
	exec socat -b 262144 "TCP-LISTEN:$2,fork,reuseaddr,bind=127.0.0.1" "TCP:127.0.0.1:$1"
}
start_relay "$iperf_port" relay_iperf
start_relay "$http_port" relay_http
serve socat_iperf socat_to "$iperf_port"
serve socat_http socat_to "$http_port"
serve socatb_iperf socat_big_to "$iperf_port"
serve socatb_http socat_big_to "$http_port"

cpu_ms() { awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) * 1000 / hz }' "/proc/$1/stat"; }
throughput() {	# PORT -> MB/s at the receiver
	iperf3 -c 127.0.0.1 -p "$1" -t "$SECS" -f M 2>/dev/null |
		awk '/receiver/ { for (i = 1; i <= NF; i++) if ($i == "MBytes/sec") print $(i-1) }'
}
conn_rate() {	# PORT -> requests (= connections) per second
	wrk -t1 -c32 -d"${SECS}s" "http://127.0.0.1:$1/" 2>/dev/null |
		awk '/Requests\/sec/ { print $2 }'
}
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

modes=(direct relay socat socatb)
declare -A tport=([direct]=$iperf_port [relay]=$relay_iperf [socat]=$socat_iperf [socatb]=$socatb_iperf)
declare -A cport=([direct]=$http_port [relay]=$relay_http [socat]=$socat_http [socatb]=$socatb_http)
declare -A tput conns
cpu_gb=() cpu_conn=() rt=() rc=()
echo "netmap bench: $ROUNDS rounds of ${SECS}s per figure, $(nproc) cores," \
	"load $(cut -d' ' -f1-3 /proc/loadavg) at start"
for r in $(seq "$ROUNDS"); do
	line="  round $r:"
	for m in "${modes[@]}"; do
		c0=$(cpu_ms "$relay_iperf_pid")
		v=$(throughput "${tport[$m]}")
		c1=$(cpu_ms "$relay_iperf_pid")
		tput[$m]+="$v "
		[ "$m" = relay ] && cpu_gb+=("$(echo "($c1 - $c0) / 1000 / ($v * $SECS / 1000)" | bc -l)")
		line+=" $m ${v} MB/s,"
	done
	for m in "${modes[@]}"; do
		c0=$(cpu_ms "$relay_http_pid")
		v=$(conn_rate "${cport[$m]}")
		c1=$(cpu_ms "$relay_http_pid")
		conns[$m]+="$v "
		[ "$m" = relay ] && cpu_conn+=("$(echo "($c1 - $c0) * 1000 / ($v * $SECS)" | bc -l)")
		line+=" $m ${v%.*} conn/s,"
	done
	echo "${line%,}"
	# paired ratios: the load of the moment hits both figures of a round
	set -- ${tput[direct]}; td=${!#}; set -- ${tput[relay]}; tr=${!#}
	set -- ${conns[direct]}; cd_=${!#}; set -- ${conns[relay]}; cr=${!#}
	rt+=("$(echo "$tr / $td" | bc -l)")
	rc+=("$(echo "$cr / $cd_" | bc -l)")
done

declare -A mt mc
for m in "${modes[@]}"; do
	# shellcheck disable=SC2086
	mt[$m]=$(median ${tput[$m]})
	# shellcheck disable=SC2086
	mc[$m]=$(median ${conns[$m]})
done

printf '\n%-30s %9s %11s %9s %14s | %9s\n' "median of $ROUNDS rounds" direct fed-netmap socat \
	"socat -b256K" "relay/dir"
printf '%-30s %9.0f %11.0f %9.0f %14.0f | %9.2f\n' "throughput MB/s (iperf3)" \
	"${mt[direct]}" "${mt[relay]}" "${mt[socat]}" "${mt[socatb]}" "$(median "${rt[@]}")"
printf '%-30s %9.0f %11.0f %9.0f %14.0f | %9.2f\n' "connections/s (wrk -c32)" \
	"${mc[direct]}" "${mc[relay]}" "${mc[socat]}" "${mc[socatb]}" "$(median "${rc[@]}")"
echo "(relay/dir: median of the per-round ratios)"
printf '\nrelay CPU: %.2f s per GB relayed, %.0f us per connection (medians)\n' \
	"$(median "${cpu_gb[@]}")" "$(median "${cpu_conn[@]}")"

#!/usr/bin/env bash
# bin/fed-netmap end to end, on loopback: the foreground relay in front of a
# busybox httpd (a page, a 100 MiB file byte for byte, 200 parallel
# clients, a debug line per connection with -v, a dead target resets the
# client, SIGTERM exits 0 and closes the port), and the lease commands
# (addresses and ports kept across processes, freed ones reused).
source "$(dirname "$0")/lib.sh"

NETMAP=$BINDIR/fed-netmap
mktempdir dir

check "fed-netmap --help" "$NETMAP" --help
for c in relay leases lease; do
	check "fed-netmap $c --help" "$NETMAP" $c --help
done
check "an unknown command is refused" bash -c "! '$NETMAP' frobnicate 2>/dev/null"

# the backend: busybox httpd on a free port, recognised by a token
mkdir -p "$dir/www"
token=netmap-$RANDOM$RANDOM
echo "$token" >"$dir/www/index.html"
head -c 100M /dev/urandom >"$dir/www/big"
backend=
for _ in $(seq 20); do
	port=$((32000 + RANDOM % 700))
	busybox httpd -f -p "127.0.0.1:$port" -h "$dir/www" 2>/dev/null &
	pid=$!
	if wait_for 2 sh -c "curl -s http://127.0.0.1:$port/ | grep -q $token"; then
		backend=$port
		on_exit "kill $pid"
		break
	fi
	kill $pid 2>/dev/null
done
check "busybox httpd backend is up" test -n "$backend"

"$NETMAP" relay --listen 127.0.0.1:0 --to "127.0.0.1:$backend" -v \
	>"$dir/relay.out" 2>"$dir/relay.err" &
relay_pid=$!
on_exit "kill $relay_pid"
check "the relay prints the address it listens on" \
	wait_for 5 grep -qE '^127\.0\.0\.1:[0-9]+$' "$dir/relay.out"
rport=$(cut -d: -f2 "$dir/relay.out")

check "a page through the relay" \
	sh -c "curl -sf http://127.0.0.1:$rport/ | grep -q $token"
want=$(sha256sum <"$dir/www/big" | cut -c1-64)
got=$(curl -sf "http://127.0.0.1:$rport/big" | sha256sum | cut -c1-64)
check "100 MiB through the relay, same SHA-256" test "$want" = "$got"

seq 200 | xargs -P 50 -I{} sh -c \
	"curl -sf --max-time 20 http://127.0.0.1:$rport/ >'$dir/par.{}'" 2>/dev/null
check "200 parallel clients each get the page" \
	test "$(cat "$dir"/par.* | grep -c "$token")" -eq 200
check "-v logs a debug line per connection event" \
	grep -q 'debug: relay relay: #1 connected' "$dir/relay.err"

kill -TERM $relay_pid
status=0
wait $relay_pid || status=$?
check "SIGTERM: the relay exits 0" test $status -eq 0
check "... and says what it relayed" grep -q 'stopping after 202 connections' "$dir/relay.err"
check "... and its port is closed" \
	bash -c "! curl -s --max-time 2 http://127.0.0.1:$rport/ >/dev/null"

# a target nobody listens on (the port the relay just closed): the client
# is let go at once, not left hanging
dead=$rport
"$NETMAP" relay --listen 127.0.0.1:0 --to "127.0.0.1:$dead" \
	>"$dir/dead.out" 2>"$dir/dead.err" &
dead_pid=$!
on_exit "kill $dead_pid"
wait_for 5 grep -qE '^127\.0\.0\.1:[0-9]+$' "$dir/dead.out"
dport=$(cut -d: -f2 "$dir/dead.out")
start=$SECONDS
check "a dead target resets the client" \
	bash -c "! curl -s --max-time 10 http://127.0.0.1:$dport/ >/dev/null"
check "... promptly" test $((SECONDS - start)) -lt 5
check "without -v, no line per connection" \
	bash -c "! grep -q debug '$dir/dead.err'"
kill $dead_pid

# leases, one process after another
state=$dir/state
lease() { "$NETMAP" lease "$@" --state "$state" --ports 32700-32767 --bind 127.0.0.1 --json; }
a=$(lease alloc web/1)
b=$(lease alloc web/2)
check "first lease: guest 10.77.0.2, host 10.77.0.1" \
	sh -c "echo '$a' | grep -q '\"guest\":\"10.77.0.2\"' && echo '$a' | grep -q '\"host\":\"10.77.0.1\"'"
check "second lease: the next /30" sh -c "echo '$b' | grep -q '\"guest\":\"10.77.0.6\"'"
port_a=$(echo "$a" | sed -E 's/.*"port":([0-9]+).*/\1/')
again=$(lease alloc web/1)
check "asking again in a new process: same address, same port" \
	sh -c "echo '$again' | grep -q '\"guest\":\"10.77.0.2\"' && echo '$again' | grep -q '\"port\":$port_a'"
check "leases --json lists both" \
	test "$("$NETMAP" leases --state "$state" --json | grep -o '"key"' | wc -l)" -eq 2
check "leases prints a table" \
	sh -c "'$NETMAP' leases --state '$state' | grep -q '^10.77.0.4/30 .*web/2'"
check "lease free" "$NETMAP" lease free web/1 --state "$state"
check "a freed lease is gone" \
	bash -c "! '$NETMAP' leases --state '$state' | grep -q 'web/1'"
c=$(lease alloc web/3)
check "its address is handed out again" sh -c "echo '$c' | grep -q '\"guest\":\"10.77.0.2\"'"
check "a missing state directory is one clear error" \
	sh -c "'$NETMAP' leases --state '$dir/nope' 2>&1 >/dev/null | grep -q 'state directory'"

#!/usr/bin/env bash
# fedfs under network faults, in a network namespace of its own (its
# loopback, its nftables table: nothing of the host's is touched): sources
# whose packets are dropped, with the authority's too, give EIO within
# the stated bound (3 s) with one and with eight of them; a stopped peer
# (SIGSTOP: it accepts, never answers) costs a reader less than the
# first-byte deadline plus a margin; a flood of idle connections from 16
# addresses leaves a normal peer's fetch working; a request with a body
# gets 400; a peer caught serving bad chunks is reported and disappears
# from GET /v1/sources, also after the authority restarts.
source "$(dirname "$0")/lib.sh"
FLOOD=$ROOT/${BUILD:-build}/tests/tools/flood

if [ -z "${FED_NET_NS:-}" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "ok - # SKIP needs root (network namespaces, nftables)"
		exit 0
	fi
	ns=fedfsnet$$
	ip netns add "$ns" || { not_ok "ip netns add $ns"; exit 1; }
	on_exit "ip netns del $ns"
	on_exit "for p in \$(ip netns pids $ns); do kill -9 \$p; done; sleep 0.2"
	ip -n "$ns" link set lo up
	FED_NET_NS=$ns nsenter --net="/run/netns/$ns" bash "$0"
	exit $?
fi

BOUND=3		# seconds: a read on a dead network gets EIO within this
MiB=1048576
mktempdir d
# drop ADDR...: every packet to those addresses (in this namespace only)
nft add table inet fedtest
nft add chain inet fedtest out '{ type filter hook output priority 0; }'
drop() { for a in "$@"; do nft add rule inet fedtest out ip daddr "$a" drop; done; }
undrop() { nft flush chain inet fedtest out; }
# timed CMD...: run CMD; how long it took (s.ms) in $t, its status in $rc
timed() {
	local t0 t1
	t0=$(date +%s%N)
	"$@" >/dev/null 2>&1
	rc=$?
	t1=$(date +%s%N)
	t=$(( (t1 - t0) / 1000000000 )).$(printf %03d $(( (t1 - t0) / 1000000 % 1000 )))
}
within() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }
sources() { curl -fsS "$AUTH/v1/sources/$1" | jq -r '.sources[].addr' | sort; }
host() { echo "${1%:*}"; }

start_authority "$d/auth" || { not_ok "the authority starts"; exit 1; }
AUTH_HOST=127.0.0.1
# 8 MiB bases, trusted before the owner starts (its catalogue knows them)
for b in lone wide frozen flood lies; do
	head -c $((8 * MiB)) /dev/urandom >"$d/$b.img"
	"$FED" trust add "$d/$b.img" --kind base --authority "$AUTH" \
		--key "$ADMIN_KEY" >/dev/null
done
start_fedfs owner 127.0.0.2 "$d" || { not_ok "the owner starts"; exit 1; }
newbase() {	# newbase NAME: the owner publishes base NAME; its sha
	cp "$d/$1.img" "$MNT_owner/publish/" || echo "# publishing $1 failed" >&2
	sha256sum <"$d/$1.img" | cut -c1-64
}
lone=$(newbase lone)	# held by the owner only
wide=$(newbase wide)	# and by seven peers
holders=("$(host "$SERVE_owner")")
for i in 1 2 3 4 5 6 7; do
	start_fedfs "h$i" "127.0.0.$((10 + i))" "$d"
	eval "m=\$MNT_h$i; s=\$SERVE_h$i"
	wait_for 10 test -e "$m/bases/$wide"
	cat "$m/bases/$wide" >/dev/null
	holders+=("$(host "$s")")
done
wait_for 10 test "$(sources "$wide" | wc -l)" -eq 8
check "eight peers are listed as sources of the wide base" \
	test "$(sources "$wide" | wc -l)" -eq 8

# --- dead sources ------------------------------------------------------------
start_fedfs r 127.0.0.30 "$d"
start_fedfs r2 127.0.0.31 "$d"	# for the authority dropped: asks it first
for m in "$MNT_r" "$MNT_r2"; do
	wait_for 10 test -e "$m/bases/$lone" && wait_for 10 test -e "$m/bases/$wide"
	stat "$m/bases/$lone" "$m/bases/$wide" >/dev/null
done
drop "${holders[@]}"
timed dd if="$MNT_r/bases/$lone" of=/dev/null bs=1M count=1 skip=2
echo "# one dead source: EIO after $t s"
check "one source dropping packets: the read fails" test "$rc" -ne 0
check "within $BOUND s" within "$t" "$BOUND"
timed dd if="$MNT_r/bases/$wide" of=/dev/null bs=1M count=1 skip=2
echo "# eight dead sources: EIO after $t s"
check "eight sources dropping packets: the read fails" test "$rc" -ne 0
check "within the same $BOUND s" within "$t" "$BOUND"
timed dd if="$MNT_r/bases/$wide" of=/dev/null bs=1M count=1 skip=5
echo "# eight dead sources known down: EIO after $t s"
check "the next read fails at once: they are known down" within "$t" 0.5
check "the log says why, once per source" \
	test "$(grep -c "is down:" "$d/r.state/fedfs.log")" -le 16
drop "$AUTH_HOST"
timed dd if="$MNT_r2/bases/$wide" of=/dev/null bs=1M count=1 skip=6
echo "# sources and authority dropped, a reader that must ask it: EIO after $t s"
check "with the authority dropped too, a read fails within $BOUND s" \
	sh -c "[ $rc -ne 0 ] && awk 'BEGIN { exit !($t < $BOUND) }'"
timed dd if="$MNT_r2/bases/$lone" of=/dev/null bs=1M count=1 skip=7
echo "# again, the authority known down: EIO after $t s"
check "and the next one at once: the authority is known down" within "$t" 0.5
check "which it said once" \
	test "$(grep -c "authority .* is unreachable" "$d/r2.state/fedfs.log")" = 1
undrop
check "once the network is back, reads work again" \
	wait_for 30 cmp "$MNT_r/bases/$wide" "$d/wide.img"

# --- a stopped peer ------------------------------------------------------------
frozen=$(newbase frozen)
start_fedfs p 127.0.0.40 "$d"
wait_for 10 test -e "$MNT_p/bases/$frozen"
cat "$MNT_p/bases/$frozen" >/dev/null
wait_for 10 sh -c "curl -fsS '$AUTH/v1/sources/$frozen' | grep -q '$SERVE_p'"
kill -STOP "$PID_p"
on_exit "kill -CONT $PID_p"
start_fedfs q 127.0.0.41 "$d"
wait_for 10 test -e "$MNT_q/bases/$frozen"
timed cmp "$MNT_q/bases/$frozen" "$d/frozen.img"
echo "# 8 MiB with a stopped peer among two sources: $t s"
check "a reader beside a stopped peer gets the right bytes" test "$rc" -eq 0
check "and loses less than the 1 s first-byte deadline and a 1 s margin" \
	within "$t" 2
check "the stopped peer was cut off, and that logged" \
	grep -q "$SERVE_p accepted but sent nothing within 1000 ms" "$d/q.state/fedfs.log"
kill -CONT "$PID_p"

# --- a connection flood ----------------------------------------------------------
flood=$(newbase flood)
"$FLOOD" 127.0.1. "$(host "$SERVE_owner")" "${SERVE_owner##*:}" >"$d/flood.out" 2>&1 &
fpid=$!
on_exit "kill $fpid"
wait_for 30 grep -q ready "$d/flood.out"
conns() { curl -s "http://$SERVE_owner/metrics" | awk '$1 == "fedfs_served_connections" { print $2 }'; }
check "the flood holds the owner's connections (1,024 from 16 addresses)" \
	wait_for 10 test "$(conns)" -ge 960
start_fedfs n 127.0.0.50 "$d"
wait_for 10 test -e "$MNT_n/bases/$flood"
check "a peer whose only source is the flooded owner still reads, in full" \
	timeout 60 cmp "$MNT_n/bases/$flood" "$d/flood.img"
check "the refusals and evictions are logged in a few lines, not one each" \
	test "$(grep -c "object server: refused" "$d/owner.state/fedfs.log")" -le 10
kill "$fpid"

# --- a body ------------------------------------------------------------------
check "a request with a body gets 400" \
	test "$(curl -s -o /dev/null -w '%{http_code}' -X GET -d hello \
		"http://$SERVE_owner/objects/$lone")" = 400

# --- a liar ------------------------------------------------------------------
liebase=$(newbase lies)
start_fedfs liar 127.0.0.60 "$d" --no-verify-store	# serves what its disk holds
wait_for 10 test -e "$MNT_liar/bases/$liebase"
cat "$MNT_liar/bases/$liebase" "$MNT_liar/bases/$lone" >/dev/null
wait_for 10 test -z "$(ls -A "$d/liar.state/chunks/tmp")"
for f in "$d"/liar.state/chunks/??/*; do
	head -c "$(stat -c %s "$f")" /dev/urandom >"$f.x" && mv "$f.x" "$f"
done
wait_for 10 sh -c "curl -fsS '$AUTH/v1/sources/$liebase' | grep -q '$SERVE_liar'"
kill -STOP "$PID_owner"	# the liar is the only other source: it is asked
on_exit "kill -CONT $PID_owner"
start_fedfs c 127.0.0.61 "$d"
wait_for 10 test -e "$MNT_c/bases/$liebase"
dd if="$MNT_c/bases/$liebase" of=/dev/null bs=1M count=1 2>/dev/null
kill -CONT "$PID_owner"
check "a reader catches the liar" \
	test "$(status "$MNT_c" '.fetch.bad_sources[].addr' | sort -u)" = "$SERVE_liar"
check "and it is no longer a source of that base" \
	wait_for 15 sh -c "! curl -fsS '$AUTH/v1/sources/$liebase' | grep -q '$SERVE_liar'"
check "but still of the other base it holds" \
	sh -c "curl -fsS '$AUTH/v1/sources/$lone' | grep -q '$SERVE_liar'"
port=${AUTH##*:}
kill "$AUTH_PID"
wait_for 10 gone "$AUTH_PID"
"$BINDIR/fed-authority" --listen "127.0.0.1:$port" --db "$d/auth/auth.db" \
	--admin-key "$d/auth/admin.pub" >>"$d/auth/authority.log" 2>&1 &
AUTH_PID=$!
on_exit "kill $AUTH_PID"
wait_for 10 curl -fsS -o /dev/null "$AUTH/healthz"
check "after the authority restarts, the liar is still not listed" \
	sh -c "curl -fsS '$AUTH/v1/sources/$liebase' | jq -e .sources >/dev/null &&
	       ! curl -fsS '$AUTH/v1/sources/$liebase' | grep -q '$SERVE_liar'"
check "and the reader still reads the base right" \
	wait_for 20 cmp "$MNT_c/bases/$liebase" "$d/lies.img"

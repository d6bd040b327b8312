#!/usr/bin/env bash
# Configuration files: each daemon (fed-authority, fedfs, fed-vmrunner,
# fed proxy) starts from its key = value file alone (--config FILE, or
# $FED_CONFIG_DIR/<daemon>.conf standing in for /etc/fed/), the command
# line overrides the file, and a bad line stops the daemon naming
# file:line and what is wrong.
source "$(dirname "$0")/lib.sh"

mktempdir d
"$FED" keygen -o "$d/admin.key" >/dev/null
"$FED" pubkey "$d/admin.key" >"$d/admin.pub"

cat >"$d/fed-authority.conf" <<CONF
# the authority of the config23 test
listen = 127.0.0.1:0
db = $d/auth.db
admin-key = $d/admin.pub
port-file = $d/port
CONF
"$BINDIR/fed-authority" --config "$d/fed-authority.conf" >>"$d/auth.log" 2>&1 &
AUTH_PID=$!
on_exit "kill $AUTH_PID"
check "fed-authority starts from its file alone" wait_for 10 test -s "$d/port"
AUTH=http://127.0.0.1:$(cat "$d/port")
check "it answers on the file's address" wait_for 10 curl -fsS -o /dev/null "$AUTH/healthz"

# the command line wins: the same file, another port file
FED_CONFIG_DIR=$d "$BINDIR/fed-authority" --port-file "$d/port2" \
	--db "$d/auth2.db" >>"$d/auth2.log" 2>&1 &
pid2=$!
on_exit "kill $pid2"
check "default file read from FED_CONFIG_DIR, command line overrides it" \
	wait_for 10 test -s "$d/port2"
check "the overridden file's port file is not written again" \
	test "$(cat "$d/port")" != "$(cat "$d/port2")"
kill "$pid2"

"$FED" keygen -o "$d/peer.key" >/dev/null
mkdir -p "$d/mnt" "$d/state"
cat >"$d/fedfs.conf" <<CONF
state = $d/state
authority = $AUTH
key = $d/peer.key
serve = 127.0.0.1:$(free_port)
foreground
CONF
"$BINDIR/fedfs" "$d/mnt" --config "$d/fedfs.conf" >>"$d/fedfs.log" 2>&1 &
fpid=$!
disown "$fpid"
on_exit "kill $fpid; wait_for 5 gone $fpid; fusermount3 -u -z '$d/mnt'"
check "fedfs starts from its file (and the mount point) alone" \
	wait_for 10 grep -q '"registered": true' "$d/mnt/.status"

cat >"$d/fed-vmrunner.conf" <<CONF
fed = $d/mnt
state = $d/vmr
authority = $AUTH
key = $d/peer.key
public-addr = 127.0.0.1
no-follow
foreground
CONF
"$BINDIR/fed-vmrunner" --config "$d/fed-vmrunner.conf" >>"$d/vmr.log" 2>&1 &
vpid=$!
on_exit "kill $vpid"
check "fed-vmrunner starts from its file alone" \
	wait_for 10 grep -q "watching $d/mnt" "$d/vmr.log"
kill "$vpid"; wait_for 10 gone "$vpid"

pport=$(free_port)
cat >"$d/fed-proxy.conf" <<CONF
listen = 127.0.0.1:$pport
authority = $AUTH
cache = $d/pcache
CONF
"$FED" proxy --config "$d/fed-proxy.conf" >>"$d/proxy.log" 2>&1 &
ppid_=$!
on_exit "kill $ppid_"
check "fed proxy starts from its file alone" \
	wait_for 10 grep -q "proxy listening on port $pport" "$d/proxy.log"

# a bad line, in each daemon's file: refused, naming file:line and why
bad() {	# bad NAME CMD...: run CMD with a file whose 3rd line is wrong
	local f=$d/bad-$1.conf out rc
	shift
	printf '# ok\n\nlisen = 127.0.0.1:1\n' >"$f"
	out=$(timeout 10 "$@" --config "$f" 2>&1); rc=$?
	[ $rc = 2 ] && grep -qF "$f:3: unknown option 'lisen'" <<<"$out" && return
	echo "# exit $rc: $out"
	return 1
}
check "fed-authority: a bad line gives file:line" bad a "$BINDIR/fed-authority"
check "fedfs: a bad line gives file:line" bad f "$BINDIR/fedfs" "$d/mnt"
check "fed-vmrunner: a bad line gives file:line" bad v "$BINDIR/fed-vmrunner"
check "fed proxy: a bad line gives file:line" bad p "$FED" proxy
printf 'listen = x\nquiet = yes\n' >"$d/flag.conf"
check "a value given to a flag is refused with file:line" \
	sh -c "'$BINDIR/fed-authority' --config '$d/flag.conf' 2>&1 | grep -qF '$d/flag.conf:2: '\''quiet'\'' takes no value'"
check "a missing --config file is refused" \
	sh -c "! '$BINDIR/fed-authority' --config '$d/none.conf' 2>/dev/null"

#!/usr/bin/env bash
# fedfs started in the background (without -f), as a person would start
# it: when it cannot serve (its --serve port taken, its mountpoint missing,
# its state dir a file) it exits non-zero at once with one line on the
# terminal's stderr, and the same line in its log; when it can, it mounts,
# exits 0 having said nothing, and serves until unmounted.
source "$(dirname "$0")/lib.sh"

mktempdir d
start_authority "$d/auth" || { not_ok "the authority starts"; exit 1; }
"$FED" keygen -o "$d/key" >/dev/null

# daemon_pid NAME: the pid of NAME's fedfs (the child it forked, which
# serves), from its log, if it got that far
daemon_pid() {
	sed -n 's/.* fedfs\[\([0-9]*\)\] .*/\1/p' "$d/$1.state/fedfs.log" \
		2>/dev/null | tail -n 1
}

# start_bg NAME ADDR:PORT [fedfs options...]: run fedfs without -f on
# $d/NAME.mnt (made by the caller, or not) with state $d/NAME.state; sets
# rc (its exit status) and took (seconds); its stderr is in $d/NAME.err.
# Whatever it leaves (a mount, a daemon) is taken away at exit, even after
# a failed check.
start_bg() {
	local name=$1 serve=$2 t0=$SECONDS
	shift 2
	# (if that pid is still this fedfs: a failed one is long gone)
	on_exit "p=\$(daemon_pid $name); [ -n \"\$p\" ] &&
		grep -qa '$d/$name.mnt' /proc/\$p/cmdline && kill -9 \$p"
	on_exit "fusermount3 -u -z '$d/$name.mnt'"
	# the deadline: a start that hangs is a failure, not a stuck test
	timeout -k 2 20 "$BINDIR/fedfs" "$d/$name.mnt" \
		--state "$d/$name.state" --authority "$AUTH" --key "$d/key" \
		--serve "$serve" "$@" >"$d/$name.out" 2>"$d/$name.err"
	rc=$?
	took=$((SECONDS - t0))
}

# failed NAME PATTERN: NAME's fedfs failed to start, at once, and said so
# on its stderr in one line, matching PATTERN, and left nothing behind
failed() {
	local name=$1 pattern=$2 pid
	sed "s/^/# $name: /" "$d/$name.err"
	check "$name: fedfs exits non-zero" test "$rc" -ne 0
	check "$name: within a few seconds" test "$took" -le 5
	check "$name: with one line on its stderr: $pattern" \
		sh -c "[ \$(wc -l <'$d/$name.err') = 1 ] &&
			grep -q -- '$pattern' '$d/$name.err'"
	check "$name: nothing is left mounted" \
		sh -c "! mountpoint -q '$d/$name.mnt' 2>/dev/null"
	pid=$(daemon_pid "$name")
	check "$name: nor running" wait_for 5 gone "${pid:-0}"
}

# logged NAME PATTERN: NAME's log has the line too
logged() {
	check "$1: the same line is in its log" \
		grep -q -- "$2" "$d/$1.state/fedfs.log"
}

# a port something else listens on (another fedfs's, below)
busy=127.0.0.1:${AUTH##*:}
mkdir "$d/busy.mnt"
start_bg busy "$busy"
failed busy "error: object server: cannot listen on $busy"
logged busy "error: object server: cannot listen on $busy"

start_bg nomnt "127.0.0.1:$(free_port)"
failed nomnt "error: cannot mount on $d/nomnt.mnt: "
logged nomnt "error: cannot mount on $d/nomnt.mnt: "

mkdir "$d/filestate.mnt"
touch "$d/filestate.state"
start_bg filestate "127.0.0.1:$(free_port)"
failed filestate "error: $d/filestate.state: Not a directory"

# a start that works
serve=127.0.0.1:$(free_port)
mkdir "$d/ok.mnt"
start_bg ok "$serve"
check "a background start that works exits 0" test "$rc" = 0
check "with the filesystem mounted" mountpoint -q "$d/ok.mnt"
check "having said nothing on its stderr" test ! -s "$d/ok.err"
check ".status is readable, and it registers" \
	wait_for 10 grep -q '"registered": true' "$d/ok.mnt/.status"
check "its log says where it mounted" grep -q \
	"info: mounted on $d/ok.mnt; .* objects served at $serve" \
	"$d/ok.state/fedfs.log"
pid=$(daemon_pid ok)
check "the daemon has left the terminal's session" \
	test "$(ps -o sid= -p "${pid:-0}" | tr -d ' ')" = "$pid"
check "it serves objects" curl -fsS -o /dev/null "http://$serve/metrics"
# a second fedfs on the same --serve port would split the requests with
# the first, each answering 404 for what only the other holds
mkdir "$d/twin.mnt"
start_bg twin "$serve"
failed twin "error: object server: cannot listen on $serve"
check "it unmounts" fusermount3 -u "$d/ok.mnt"
check "and then exits" wait_for 10 gone "${pid:-0}"

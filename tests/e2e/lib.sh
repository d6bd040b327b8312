# Shared helpers for end-to-end tests (sourced).  Output is TAP-like:
# "ok - what" / "not ok - what", read by tests/run.sh.
#
# Every test registers what it creates with `on_exit CMD`; the commands run
# in reverse order when the script exits, however it exits.
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# kill_jails, jail_hash (and a wait_for this file defines again its way)
source "$ROOT/scripts/lib.sh"
BINDIR=${BINDIR:-bin}
case $BINDIR in /*) ;; *) BINDIR=$ROOT/$BINDIR ;; esac
FED=$BINDIR/fed

_cleanups=()
on_exit() { _cleanups+=("$*"); }
_run_cleanups() {
	local i
	for ((i = ${#_cleanups[@]} - 1; i >= 0; i--)); do
		eval "${_cleanups[$i]}" >/dev/null 2>&1 || true
	done
}
trap _run_cleanups EXIT
trap 'exit 130' INT TERM

ok() { echo "ok - $*"; }
not_ok() { echo "not ok - $*"; }

# check "description" command...   (ok iff the command succeeds)
check() {
	local what=$1
	shift
	if "$@"; then ok "$what"; else not_ok "$what"; fi
}

# wait_for SECONDS command...   poll every 0.1 s until it succeeds
wait_for() {
	local deadline=$((SECONDS + $1))
	shift
	while ! "$@"; do
		[ $SECONDS -ge $deadline ] && return 1
		sleep 0.1
	done
}

# gone PID: true once PID has exited (a zombie waiting to be reaped
# counts as gone: it holds no file, lock or port any more).
gone() {
	local st
	st=$(sed -n 's/^State:[[:space:]]*\(.\).*/\1/p' "/proc/$1/status" 2>/dev/null)
	[ -z "$st" ] || [ "$st" = Z ]
}

# A fresh temporary directory, removed at exit, in the variable named $1:
#   mktempdir dir; echo "$dir"
# (not $(mktempdir): the cleanup would be registered in a subshell and lost)
mktempdir() {
	local _mktempdir_path
	_mktempdir_path=$(mktemp -d "${TMPDIR:-/tmp}/fed-test.XXXXXX")
	# FED_TEST_KEEP=1 keeps it (logs, stores) for a look after a failure
	[ "${FED_TEST_KEEP:-0}" = 1 ] || on_exit "rm -rf '$_mktempdir_path'"
	printf -v "$1" '%s' "$_mktempdir_path"
}

# --- a federation on loopback ----------------------------------------------
# Each peer serves objects on its own 127.0.0.x address, so peers are told
# apart by address as they would be on a network.

# flip_byte FILE OFFSET: invert every bit of one byte in place.  Writing a
# fixed byte instead would change nothing, 1 run in 256, when the byte
# already had that value.
flip_byte() {
	local old
	old=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
	printf "\\$(printf '%03o' $((old ^ 255)))" |
		dd of="$1" bs=1 seek="$2" conv=notrunc 2>/dev/null
}

# free_port: a TCP port nobody listens on now.
# free_port: a TCP port nothing listens on, below the kernel's ephemeral
# range (32768 and up: a port a connection happens to use as its own
# cannot be bound by a server) and below the fixed ports some tests use
# (30000 and up)
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 10000))
		ss -Hltn "sport = :$p" | grep -q . || { echo "$p"; return; }
	done
}

# serve_file PORT FILE: a server on 127.0.0.1:PORT answering every GET
# with 200 and FILE's bytes as they are now (JSON), killed at exit: a
# replaying man in the middle, or a lying peer.
serve_file() {
	python3 -c '
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = open(sys.argv[2], "rb").read()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
' "$1" "$2" &
	on_exit "kill $!"
}

# The database for an authority in DIR, into $AUTH_DB: DIR/auth.db, or
# with FED_TEST_STORE=postgres a fresh database on the server at
# $FED_TEST_PG (tests/run.sh starts one), dropped at exit.  A restart in
# the same DIR finds the same one (DIR/db).
_authority_db() {
	local name
	if [ -f "$1/db" ]; then
		AUTH_DB=$(cat "$1/db")
		return
	fi
	AUTH_DB=$1/auth.db
	if [ "${FED_TEST_STORE:-sqlite}" = postgres ]; then
		[ -n "${FED_TEST_PG:-}" ] || { echo "# FED_TEST_STORE=postgres needs FED_TEST_PG"; return 1; }
		name=fed_e2e_$$_$RANDOM$RANDOM
		psql -qAt "$FED_TEST_PG" -c "CREATE DATABASE $name" >/dev/null || return 1
		on_exit "psql -qAt '$FED_TEST_PG' -c 'DROP DATABASE IF EXISTS $name WITH (FORCE)'"
		AUTH_DB=${FED_TEST_PG%/*}/$name
	fi
	echo "$AUTH_DB" >"$1/db"
}

# start_authority DIR: an authority with an admin key in DIR; sets AUTH
# (its URL), ADMIN_KEY, AUTH_PID, AUTH_DB.  Its database: see _authority_db
# (an option --db given here comes later, and wins).
start_authority() {	# start_authority DIR [fed-authority options...]
	local dir=$1 port
	mkdir -p "$dir"
	_authority_db "$dir" || return 1
	[ -f "$dir/admin.key" ] || "$FED" keygen -o "$dir/admin.key" >/dev/null
	"$FED" pubkey "$dir/admin.key" >"$dir/admin.pub"
	rm -f "$dir/port"
	shift
	"$BINDIR/fed-authority" --listen 127.0.0.1:0 --port-file "$dir/port" \
		--db "$AUTH_DB" --admin-key "$dir/admin.pub" "$@" \
		>>"$dir/authority.log" 2>&1 &
	AUTH_PID=$!
	on_exit "kill $AUTH_PID"
	wait_for 10 test -s "$dir/port" || { echo "# authority did not start"; return 1; }
	port=$(cat "$dir/port")
	AUTH=http://127.0.0.1:$port
	ADMIN_KEY=$dir/admin.key
	wait_for 10 curl -fsS -o /dev/null "$AUTH/healthz"
}

# start_fedfs NAME ADDR DIR [fedfs options...]: mount a fedfs for peer NAME
# (key DIR/NAME.key, made if missing) at DIR/NAME.mnt serving objects at
# ADDR:<free port>; sets MNT_<NAME>, PID_<NAME>, KEY_<NAME>, SERVE_<NAME>.
start_fedfs() {
	local name=$1 addr=$2 dir=$3 port mnt state key pid
	shift 3
	mnt=$dir/$name.mnt
	state=$dir/$name.state
	key=$dir/$name.key
	mkdir -p "$mnt" "$state"
	[ -f "$key" ] || "$FED" keygen -o "$key" >/dev/null
	port=$(free_port)
	"$BINDIR/fedfs" "$mnt" --state "$state" --authority "$AUTH" \
		--key "$key" --serve "$addr:$port" -f "$@" \
		>>"$state/fedfs.log" 2>&1 &
	pid=$!
	disown "$pid"	# killed on purpose by some tests: no job notices
	on_exit "kill -9 $pid; fusermount3 -u -z '$mnt'"
	printf -v "MNT_$name" '%s' "$mnt"
	printf -v "PID_$name" '%s' "$pid"
	printf -v "KEY_$name" '%s' "$key"
	printf -v "SERVE_$name" '%s' "$addr:$port"
	wait_for 10 grep -q '"registered": true' "$mnt/.status" 2>/dev/null && return
	# what went wrong, into the test's output: its log goes with $dir
	echo "# fedfs $name did not come up; the end of its log:"
	tail -n 5 "$state/fedfs.log" | sed 's/^/#   /'
	return 1
}

# status MNT FILTER: a value from MNT/.status through jq, e.g.
#   status "$MNT_a" .fetch.fetched_chunks
status() {
	jq -r "$2" "$1/.status"
}

# qemu_kernel_object VAR: the path of the QEMU kernel object
# (scripts/mkqemukernel.sh) in the variable named VAR, as scripts/deps.sh
# built it into FED_KERNEL_CACHE: no test downloads or builds a kernel.
# Returns 1 (with a "# ..." line) if it is not there.
qemu_kernel_object() {
	local obj
	if ! obj=$(bash "$ROOT/scripts/mkqemukernel.sh" --cached 2>&1); then
		echo "# $obj"
		return 1
	fi
	printf -v "$1" '%s' "$obj"
}

# --- fed's UML kernel ----------------------------------------------------------
# UML: fed's own kernel for these sources (scripts/mkumlkernel.sh --cached),
# built by scripts/deps.sh; empty, with UML_MISSING saying why, if it is not
# built.  A suite that boots machines calls need_uml first.
if ! UML=$(bash "$ROOT/scripts/mkumlkernel.sh" --cached 2>&1); then
	UML_MISSING=$UML
	UML=
fi

# need_uml: fail the suite in one line (never skip it: a missing install
# step must not pass) unless fed's UML kernel is built.
need_uml() {
	[ -n "$UML" ] && return 0
	not_ok "fed's UML kernel is built: ${UML_MISSING:-}"
	exit 1
}

# import_disk ROOT IMG: the import disk of `fed snapshot create`, by hand:
# an ext2 image of the tree ROOT, whose files/ the base's /init copies over
# the guest's root when booted with ubd1r=IMG fed.import=/dev/ubdb.
import_disk() {
	local kib
	kib=$(du -sk --apparent-size "$1" | cut -f1)
	mke2fs -q -F -t ext2 -b 4096 -m 0 -E root_owner=0:0 -d "$1" "$2" >/dev/null \
		"$((kib + kib / 4 + 16384))k"
}

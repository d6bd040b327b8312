# Shared helpers for end-to-end tests (sourced).  Output is TAP-like:
# "ok - what" / "not ok - what", read by tests/run.sh.
#
# Every test registers what it creates with `on_exit CMD`; the commands run
# in reverse order when the script exits, however it exits.
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
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

# A fresh temporary directory, removed at exit, in the variable named $1:
#   mktempdir dir; echo "$dir"
# (not $(mktempdir): the cleanup would be registered in a subshell and lost)
mktempdir() {
	local d
	d=$(mktemp -d "${TMPDIR:-/tmp}/fed-test.XXXXXX")
	on_exit "rm -rf '$d'"
	printf -v "$1" '%s' "$d"
}

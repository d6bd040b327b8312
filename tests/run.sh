#!/usr/bin/env bash
# Run fed's tests and print one summary line: "N passed, N failed".
#
#   tests/run.sh unit|e2e|all
#
# Unit tests are Criterion binaries in $BUILD/tests/; each prints a
# "Synthesis: Tested: T | Passing: P | ..." line.  End-to-end tests are
# tests/e2e/*.sh printing TAP lines ("ok - ..." / "not ok - ...").  A test
# program that dies without reporting counts as one failure.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export BINDIR=${BINDIR:-bin}
what=${1:-all}
passed=0
failed=0
log_dir=$BUILD/test-logs
mkdir -p "$log_dir"

# run_one BINARY NAME: one Criterion binary, counted under NAME.
run_one() {
	local t=$1 name=$2 out synth tested passing
	out=$log_dir/$name.log
	"$t" -j1 --color=never >"$out" 2>&1
	synth=$(grep -a 'Synthesis:' "$out" | tail -n 1)
	if [ -z "$synth" ]; then
		echo "FAIL $name: no result (crashed?), see $out"
		failed=$((failed + 1))
		return
	fi
	tested=$(sed -E 's/.*Tested: ([0-9]+).*/\1/' <<<"$synth")
	passing=$(sed -E 's/.*Passing: ([0-9]+).*/\1/' <<<"$synth")
	passed=$((passed + passing))
	failed=$((failed + tested - passing))
	if [ "$tested" -ne "$passing" ]; then
		echo "FAIL $name: $((tested - passing)) of $tested failed:"
		grep -a -E '^\[(FAIL|----)\]' "$out" | head -n 40
	else
		echo "ok   $name: $passing tests"
	fi
}

run_unit() {
	local t name
	for t in "$BUILD"/tests/test_*; do
		[ -x "$t" ] || continue
		name=$(basename "$t")
		case $name in *_pg) continue ;; esac	# run_unit_pg's alone
		run_one "$t" "$name"
	done
}

# The authority's tests again, on PostgreSQL: a throwaway server
# (tests/lib/pg.sh) for them all, a database for each test
# (tests/lib/pgfix.c).  test_authority_store checks SQLite's own file.
PG_DIR=
pg_stop() {
	[ -n "$PG_DIR" ] || return 0
	bash tests/lib/pg.sh stop "$PG_DIR" >/dev/null 2>&1
	rm -rf "$PG_DIR"
	PG_DIR=
}
trap pg_stop EXIT

pg_start() {
	[ -n "$PG_DIR" ] && return 0
	PG_DIR=$(mktemp -d /tmp/fed-test-pg.XXXXXX)
	if ! FED_TEST_PG=$(bash tests/lib/pg.sh start "$PG_DIR/server" 2>&1); then
		echo "FAIL postgres: no test server: $FED_TEST_PG"
		failed=$((failed + 1))
		return 1
	fi
	export FED_TEST_PG
}

run_unit_pg() {
	local t name
	pg_start || return
	for t in "$BUILD"/tests/test_authority_*; do
		[ -x "$t" ] || continue
		name=$(basename "$t")
		[ "$name" = test_authority_store ] && continue
		FED_TEST_STORE=postgres run_one "$t" "$name(postgres)"
	done
}

# run_e2e_one SCRIPT NAME: one end-to-end script, counted under NAME.
run_e2e_one() {
	local t=$1 name=$2 out p f rc
	out=$log_dir/e2e-$name.log
	bash "$t" >"$out" 2>&1
	rc=$?
	p=$(grep -a -c -E '^ok ' "$out")
	f=$(grep -a -c -E '^not ok ' "$out")
	if [ "$p" -eq 0 ] && [ "$f" -eq 0 ] || { [ $rc -ne 0 ] && [ "$f" -eq 0 ]; }; then
		f=$((f + 1))
		echo "FAIL e2e/$name: exited $rc without reporting a failure; see $out"
		tail -n 20 "$out"
	elif [ "$f" -gt 0 ]; then
		echo "FAIL e2e/$name: $f of $((p + f)) failed:"
		grep -a -E '^not ok |^#' "$out" | head -n 40
	else
		echo "ok   e2e/$name: $p tests"
	fi
	passed=$((passed + p))
	failed=$((failed + f))
}

run_e2e() {
	local t name
	for t in tests/e2e/*.sh; do
		[ -f "$t" ] || continue
		name=$(basename "$t" .sh)
		[ "$name" = lib ] && continue	# sourced helpers, not a test
		run_e2e_one "$t" "$name"
	done
}

# The end-to-end tests of the authority's behaviour again, on PostgreSQL
# (tests/e2e/lib.sh makes each authority a database; federation.sh runs
# the cluster's authority on a primary and standby, and fails it over).
E2E_PG="authority_failover liveness federation key_rotation"
run_e2e_pg() {
	local name
	pg_start || return
	for name in $E2E_PG; do
		FED_TEST_STORE=postgres run_e2e_one "tests/e2e/$name.sh" "$name(postgres)"
	done
}

case $what in
unit) run_unit; run_unit_pg ;;
e2e) run_e2e; run_e2e_pg ;;
all) run_unit; run_unit_pg; run_e2e; run_e2e_pg ;;
*) echo "usage: $0 unit|e2e|all" >&2; exit 2 ;;
esac

# make asan: the sanitizers write each process's report to $SAN_REPORTS
# (ASAN_OPTIONS log_path).  A report of an error fails the run even when no
# test noticed it: a daemon's own log lives in a temporary directory that
# its test removes, and a leak is found only as the process exits.
run_san_reports() {
	local r
	for r in "$SAN_REPORTS"/*; do
		[ -f "$r" ] || continue
		grep -a -q -E 'ERROR: [A-Za-z]+Sanitizer|runtime error:' "$r" || continue
		failed=$((failed + 1))
		echo "FAIL sanitizer report $r:"
		head -n 30 "$r"
	done
}
[ -n "${SAN_REPORTS:-}" ] && run_san_reports

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

#!/usr/bin/env bash
# bench/mirror.sh - a fresh signed lookup answer when the authority is
# dead (issue 21, "Peers mirror"), on loopback, figures side by side from
# the same run:
#
#  1. `fed lookup --authority-key` against the live authority (the
#     baseline) vs, with the authority killed, the same with --mirror
#     naming the peer that mirrors the answer: RUNS runs each, one process
#     per run as a user runs it (its start-up counted in both), median and
#     p99 in ms.  The dead authority's URL is still asked first (a refused
#     connection), as it is for a real client.
#  2. What the client pays to check one answer (bench/answer_verify.c):
#     parse + Ed25519 verification + expiry, against the parse alone, µs.
#
# The federation is tests/e2e/mirror.sh's: an authority with --key, a
# fedfs owner and a fedfs peer with --authority-key committed to a
# one-sector snapshot, no machine booted.
set -uo pipefail
source "$(dirname "$0")/../tests/e2e/lib.sh"
RUNS=${RUNS:-100}
VERIFY_N=${VERIFY_N:-20000}
AC=$ROOT/${BUILD:-build}/tests/tools/authcall
MKCOW=$ROOT/${BUILD:-build}/tests/tools/mkcow
PKGS="libgcrypt zlib libcurl jansson"
make -C "$ROOT" -s all build/tests/tools/authcall build/tests/tools/mkcow >/dev/null ||
	exit 1
mktempdir d
# shellcheck disable=SC2046
${CC:-cc} -std=c11 -O2 -Wall -Wextra -Werror -I"$ROOT/src" -D_GNU_SOURCE \
	$(pkg-config --cflags $PKGS) -o "$d/answer_verify" \
	"$ROOT/bench/answer_verify.c" "$ROOT/build/libcommon.a" \
	$(pkg-config --libs $PKGS) -pthread || exit 1
die() { echo "bench/mirror: $*" >&2; exit 1; }
HOST=www.example.org
LOOKUP="/v1/lookup?host=$HOST&port=80"

"$FED" keygen -o "$d/authority.key" >/dev/null
PUB=$("$FED" pubkey "$d/authority.key")
start_authority "$d/auth" --key "$d/authority.key" >/dev/null || die "no authority"
head -c 1048576 /dev/urandom >"$d/base.img"
head -c 65536 /dev/urandom >"$d/kernel"
"$FED" trust add "$d/base.img" --kind base --authority "$AUTH" --key "$ADMIN_KEY" >/dev/null
"$FED" trust add "$d/kernel" --kind kernel --authority "$AUTH" --key "$ADMIN_KEY" >/dev/null
"$MKCOW" "$d/base.img" "$d/web.cow" || die "mkcow"
"$FED" keygen -o "$d/owner.key" >/dev/null
"$FED" snapshot pack --base "$d/base.img" --cow "$d/web.cow" --service $HOST:80 \
	--guest-port 80 --kernel-hash "$(sha256sum <"$d/kernel" | cut -c1-64)" \
	--key "$d/owner.key" -o "$d/web.fedsnap" --version 1 >/dev/null || die "pack"
id=$("$FED" snapshot inspect "$d/web.fedsnap" --json | jq -r .id)
start_fedfs owner 127.0.0.1 "$d" >/dev/null || die "owner's fedfs"
cp "$d/base.img" "$d/kernel" "$d/web.fedsnap" "$MNT_owner/publish/"
start_fedfs p 127.0.0.2 "$d" --authority-key "$PUB" >/dev/null || die "peer's fedfs"
wait_for 30 test -e "$MNT_p/deltas/$id.fedsnap" || die "no delta"
cp "$MNT_p/deltas/$id.fedsnap" "$MNT_p/commit/web.fedsnap"
"$AC" "$AUTH" POST /v1/commitments --key "$KEY_p" \
	--body "{\"snapshot\":\"$id\",\"up\":true,\"addr\":\"127.0.0.1\",\"port\":8080}" >/dev/null
mirrored() {
	local body
	body=$(curl -fsS "http://$SERVE_p$LOOKUP" 2>/dev/null) || return 1
	jq -e '.peers | length == 1' <<<"$body" >/dev/null
}
wait_for 40 mirrored || die "the peer did not mirror the answer"
curl -fsS "http://$SERVE_p$LOOKUP" >"$d/answer.json"

# time_runs OUT CMD...: RUNS runs of CMD (must succeed), ms each into OUT
time_runs() {
	local out=$1 i t0
	shift
	: >"$out"
	for ((i = 0; i < RUNS; i++)); do
		t0=$EPOCHREALTIME
		"$@" >/dev/null 2>&1 || die "failed: $*"
		echo "($EPOCHREALTIME - $t0) * 1000" | bc -l >>"$out"
	done
}
# stats FILE -> "median p99" (ms)
stats() {
	sort -n "$1" | awk '{a[NR] = $1} END {
		p = int(NR * 0.99 + 0.999); if (p > NR) p = NR
		printf "%.2f %.2f", a[int((NR + 1) / 2)], a[p] }'
}

DEAD=http://127.0.0.1:$(free_port)
time_runs "$d/auth.ms" "$FED" lookup $HOST:80 --authority "$AUTH" --authority-key "$PUB"
kill "$AUTH_PID"
wait_for 10 gone "$AUTH_PID" || die "the authority did not stop"
time_runs "$d/mirror.ms" "$FED" lookup $HOST:80 --authority "$AUTH,$DEAD" \
	--authority-key "$PUB" --mirror "$SERVE_p"
read -r am ap < <(stats "$d/auth.ms")
read -r mm mp < <(stats "$d/mirror.ms")
printf 'fresh answer, live authority (baseline):   median %7.2f ms  p99 %7.2f ms  (%d runs of fed lookup)\n' "$am" "$ap" "$RUNS"
printf 'fresh answer, authorities dead, a mirror:  median %7.2f ms  p99 %7.2f ms  (%d runs)\n' "$mm" "$mp" "$RUNS"
printf 'ratio mirror / authority (median): %.2f\n' "$(echo "$mm / $am" | bc -l)"

out=$("$d/answer_verify" "$d/answer.json" "$PUB" "$HOST:80" "$VERIFY_N") || die "verify"
pu=$(awk '/^parse_us/ {print $2}' <<<"$out")
vu=$(awk '/^verify_us/ {print $2}' <<<"$out")
printf 'client check per answer (%d B): parse alone %.1f µs; parse + verify %.1f µs (Ed25519 + canonical dump: %.1f µs)\n' \
	"$(stat -c %s "$d/answer.json")" "$pu" "$vu" "$(echo "$vu - $pu" | bc -l)"

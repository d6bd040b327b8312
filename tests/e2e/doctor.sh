#!/usr/bin/env bash
# `fed doctor`: on this machine every check reports a verdict (and the ones
# this host is set up for are fine), the authority is reached and the
# clock compared with its Date; a check broken on purpose (no /dev/net/tun,
# via FED_DOCTOR_DEV; an authority that is down; a missing kernel) is
# named FAIL with what to do, and the exit status says so.
source "$(dirname "$0")/lib.sh"

mktempdir d
start_authority "$d/auth"
out=$("$FED" doctor --authority "$AUTH" --state "$d/state" --json); rc=$?
verdict() { jq -r ".checks[] | select(.check == \"$1\") | .status" <<<"$out"; }
check "doctor --json names eight checks" \
	test "$(jq '.checks | length' <<<"$out")" = 8
for c in fuse tun namespaces cgroups kernel authority clock disk; do
	check "check $c reports a verdict ($(verdict "$c"))" \
		grep -qxE 'ok|warn|FAIL' <<<"$(verdict "$c")"
done
for c in fuse tun namespaces kernel authority clock; do
	check "check $c is ok on this host" test "$(verdict "$c")" = ok
done
check "nothing failed: exit 0, ok true" \
	test "$rc" = 0 -a "$(jq .ok <<<"$out")" = true
[ "$rc" = 0 ] || jq -c '.checks[] | select(.status == "FAIL")' <<<"$out" | sed 's/^/# /'

# no tun: a /dev without net/tun
mkdir -p "$d/dev"
ln -s /dev/fuse "$d/dev/fuse"
text=$(FED_DOCTOR_DEV=$d/dev "$FED" doctor --authority "$AUTH" --state "$d/state"); rc=$?
check "without /dev/net/tun the doctor exits 1" test "$rc" = 1
check "the tun line is FAIL and says what to do" \
	grep -qE "^FAIL +tun +cannot open $d/dev/net/tun: .*to do: modprobe tun" <<<"$text"
check "the other lines are still fine" grep -qE '^ok +fuse ' <<<"$text"

# a list whose second URL is dead: each URL is asked, the dead one named
dead=http://127.0.0.1:$(free_port 2>/dev/null || echo 9)
text=$("$FED" doctor --authority "$AUTH,$dead" --state "$d/state")
check "an authority list with a dead URL is WARN naming it" \
	grep -qE "^warn +authority +1 of 2 answer; $dead/healthz: " <<<"$text"
check "and the clock is checked against the one that answers" \
	grep -qE '^ok +clock ' <<<"$text"

# the authority gone: named, with the clock skipped
kill "$AUTH_PID"; wait_for 10 gone "$AUTH_PID"
text=$("$FED" doctor --authority "$AUTH" --state "$d/state")
check "an authority that is down is FAIL with what to check" \
	grep -qE "^FAIL +authority +$AUTH/healthz: .*to do: check the URL" <<<"$text"
check "the clock is then skipped, saying why" \
	grep -qE '^skip +clock +no reply' <<<"$text"

text=$("$FED" doctor --kernel "$d/none23" --state "$d/state")
check "a missing kernel is FAIL naming the build step" \
	grep -qE "^FAIL +kernel +no kernel $d/none23: .*scripts/deps.sh" <<<"$text"
text=$(printf 'not a kernel' >"$d/bad.uml"; chmod +x "$d/bad.uml"
	"$FED" doctor --kernel "$d/bad.uml" --state "$d/state")
check "a kernel that does not boot is FAIL" \
	grep -qE "^FAIL +kernel +$d/bad.uml does not boot here" <<<"$text"

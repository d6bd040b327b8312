#!/usr/bin/env bash
# The systemd units in systemd/, as make install writes them: every one
# passes `systemd-analyze verify` (which runs here without a running
# systemd; --man=no because the man pages are not on the system's man
# path in a staging install), a broken unit does not, and the sandboxed
# ones keep `systemd-analyze security --offline` exposure low.
source "$(dirname "$0")/lib.sh"

mktempdir d
# PREFIX (not DESTDIR), so the units' ExecStart= name binaries that exist
make -s -C "$ROOT" BUILD="${BUILD:-build}" BINDIR="$BINDIR" \
	PREFIX="$d/usr" SYSCONFDIR="$d/etc" install >/dev/null
units=$d/usr/lib/systemd/system
n=0
for u in "$units"/*.service; do
	n=$((n + 1))
	out=$(systemd-analyze verify --man=no "$u" 2>&1); rc=$?
	check "systemd-analyze verify $(basename "$u")" test "$rc" = 0 -a -z "$out"
	[ -z "$out" ] || echo "# $out"
done
check "four units installed" test "$n" = 4
check "ExecStart names the installed binary" \
	grep -q "^ExecStart=$d/usr/bin/fed-authority" "$units/fed-authority.service"

# the check can fail: a misspelt directive and a missing binary
sed 's/^Restart=/Restrat=/; s|^ExecStart=.*|ExecStart=/nonexistent23/x|' \
	"$units/fed-authority.service" >"$d/broken23.service"
check "a broken unit fails verify" \
	sh -c "! systemd-analyze verify --man=no '$d/broken23.service' >/dev/null 2>&1"

score() { systemd-analyze security --offline=yes "$1" 2>/dev/null |
	sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p'; }
for u in fed-authority fed-proxy; do
	s=$(score "$units/$u.service")
	echo "# $u exposure $s"
	check "$u exposure below 2.0 (is $s)" awk "BEGIN { exit !($s < 2.0) }"
done
cp "$units/fedfs@.service" "$units/fedfs@srv-fed.service"
s=$(score "$units/fedfs@srv-fed.service")
echo "# fedfs@ exposure $s"
check "fedfs@ exposure below 5.0 (is $s)" awk "BEGIN { exit !($s < 5.0) }"
s=$(score "$units/fed-vmrunner.service")
echo "# fed-vmrunner exposure $s"
check "fed-vmrunner exposure below 8.5 (is $s)" awk "BEGIN { exit !($s < 8.5) }"

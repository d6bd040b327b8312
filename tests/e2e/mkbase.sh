#!/usr/bin/env bash
# End-to-end test of scripts/mkbase.sh and the base image's /init: a
# reproducible image (same SHA-256 from two builds made at different times,
# umasks, cwds and TMPDIRs), then real boots of fed's UML kernel over it:
# import files from an import disk into a COW, probe them back, serve HTTP
# on a tap inside a network namespace this test creates, and find no way
# for a guest to load a module or mount the host's files.
# Needs root (tap devices, network namespaces).
. "$(dirname "$0")/lib.sh"

MKBASE=$ROOT/scripts/mkbase.sh
need_uml
FIXED_TIME_HEX=0x63b0cd00    # scripts/mkbase.sh FIXED_TIME (2023-01-01)

mktempdir tmp

# --- 1. reproducible image --------------------------------------------------
# All timestamps in the image must be the fixed one (so the staging time,
# including ctime that touch cannot set, left no trace), and two builds made
# in different seconds with different umask/cwd/TMPDIR must be identical.
all_times_fixed() {
	local img=$1 used last i
	used=$(dumpe2fs -h "$img" 2>/dev/null |
		awk -F: '/^Inode count/{n=$2} /^Free inodes/{f=$2} END{print n-f}')
	last=$((used))   # inodes 1..10 are reserved, 11 is lost+found, then ours
	{
		echo 'stat <2>'
		for ((i = 11; i <= last; i++)); do echo "stat <$i>"; done
	} >"$tmp/stat.cmds"
	debugfs -f "$tmp/stat.cmds" "$img" 2>/dev/null |
		grep -E '^ *(c|a|m)time: ' >"$tmp/times"
	[ "$(wc -l <"$tmp/times")" -eq $((3 * (last - 10 + 1))) ] || {
		echo "# expected times of $((last - 9)) inodes"
		return 1
	}
	if grep -v "time: $FIXED_TIME_HEX " "$tmp/times" | grep -q .; then
		echo "# timestamps other than $FIXED_TIME_HEX:"
		grep -v "time: $FIXED_TIME_HEX " "$tmp/times" | head -n 5 | sed 's/^/#   /'
		return 1
	fi
}
second_changed() { [ "$(date +%s)" -gt "$1" ]; }

mkdir -p "$tmp/tmpa" "$tmp/tmpb" "$tmp/cwd"
t_a=$(date +%s)
sha_a=$(cd "$tmp/cwd" && umask 022 && TMPDIR=$tmp/tmpa bash "$MKBASE" "$tmp/base.img" 2>"$tmp/mkbase-a.err")
rc_a=$?
# Staged files of the second build must get a later ctime (an mkbase run
# takes about 2 s, so this normally does not wait at all).
wait_for 5 second_changed "$t_a"
sha_b=$(cd / && umask 077 && TMPDIR=$tmp/tmpb bash "$MKBASE" "${tmp#/}/base-b.img" 64 2>"$tmp/mkbase-b.err")
rc_b=$?
file_a=$(sha256sum "$tmp/base.img" 2>/dev/null | cut -d' ' -f1)
file_b=$(sha256sum "$tmp/base-b.img" 2>/dev/null | cut -d' ' -f1)
echo "# base image sha256 $file_a"
if [ $rc_a -eq 0 ] && [ $rc_b -eq 0 ] && [ -n "$file_a" ] &&
	[ "$sha_a" = "$file_a" ] && [ "$sha_b" = "$file_b" ] && [ "$file_a" = "$file_b" ] &&
	[ "$(stat -c %s "$tmp/base.img")" -eq $((64 << 20)) ] &&
	e2fsck -fn "$tmp/base.img" >/dev/null 2>&1 &&
	all_times_fixed "$tmp/base.img"; then
	ok "mkbase: two builds (different time, umask, cwd, TMPDIR) give the same SHA-256"
else
	cat "$tmp/mkbase-a.err" "$tmp/mkbase-b.err" 2>/dev/null | sed 's/^/# /'
	echo "# a=$file_a (printed $sha_a) b=$file_b (printed $sha_b)"
	not_ok "mkbase: two builds (different time, umask, cwd, TMPDIR) give the same SHA-256"
fi
base=$tmp/base.img
base_sha=$file_a


# --- 2 to 5: the /init contract on it ----------------------------------------
CONTRACT_LABEL="busybox base"
. "$(dirname "$0")/contract.bash"

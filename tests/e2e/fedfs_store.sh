#!/usr/bin/env bash
# fedfs's own store under faults: chunk files overwritten or cut short
# behind fedfs's back are never read back nor served to peers, but logged,
# dropped and fetched again; `fedfs --fsck` finds them after a restart and
# the background scrubber while nobody reads them; a store on a small
# filesystem is bounded by default, evicts when the disk fills (the local
# ENOSPC counted against no source) and refuses a commitment it could not
# keep.
source "$(dirname "$0")/lib.sh"

need_uml
mktempdir d
MiB=1048576
# synced NAME: every chunk NAME fetched is under its name
synced() { test -z "$(ls -A "$d/$1.state/chunks/tmp")"; }
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
# chunk N: the hash of chunk N of big.img
chunk() { jq -r ".chunks[$1]" "$d/big.index"; }
# chunk_file NAME N: its file in NAME's store
chunk_file() { local h; h=$(chunk "$2"); echo "$d/$1.state/chunks/${h:0:2}/$h"; }
# spoil FILE: overwrite 64 bytes in the middle, in place
spoil() {
	head -c 64 /dev/urandom |
		dd of="$1" bs=1 seek=$((MiB / 2)) conv=notrunc 2>/dev/null
}
# halve FILE: cut it to half its length
halve() { truncate -s $(($(stat -c %s "$1") / 2)) "$1"; }
logged() { grep -q -e "$2" "$d/$1.state/fedfs.log"; }
# small_fs DIR MIB: a tmpfs of that size at DIR, unmounted at exit
small_fs() {
	mkdir -p "$1"
	mount -t tmpfs -o "size=${2}m" tmpfs "$1" || return 1
	on_exit "umount -l '$1'"
}

start_authority "$d/auth" --publish-allowance 10 || { not_ok "the authority starts"; exit 1; }
bash "$ROOT/scripts/mkbase.sh" "$d/base.img" 16 >/dev/null
cp "$UML" "$d/kernel"
head -c $((48 * MiB)) /dev/urandom >"$d/big.img"	# larger than a small store
for f in base.img big.img; do
	"$FED" trust add "$d/$f" --kind base --authority "$AUTH" --key "$ADMIN_KEY" >/dev/null
done
"$FED" trust add "$d/kernel" --kind kernel --authority "$AUTH" --key "$ADMIN_KEY" >/dev/null
bigsum=$(sha256sum <"$d/big.img" | cut -c1-64)
ksum=$(sha256sum <"$d/kernel" | cut -c1-64)
curl -fsS "$AUTH/v1/trusted" | jq --arg s "$bigsum" \
	'[.. | objects | select(.sha256? == $s) | .index][0]' >"$d/big.index"
start_fedfs owner 127.0.0.1 "$d" || exit 1
for f in base.img kernel big.img; do cp "$d/$f" "$MNT_owner/publish/"; done

# --- a corrupted or truncated chunk is never read back -----------------------
start_fedfs r 127.0.0.2 "$d" --scrub-rate 0
check "a peer reads the base, byte for byte" cmp "$MNT_r/bases/$bigsum" "$d/big.img"
wait_for 20 synced r
spoil "$(chunk_file r 3)"
halve "$(chunk_file r 5)"
: >"$(chunk_file r 6)"		# emptied
drop_caches
check "with three chunk files spoiled, the peer still reads the right bytes" \
	cmp "$MNT_r/bases/$bigsum" "$d/big.img"
check "the corrupt one is logged: which object, which chunk, both hashes, what is done" \
	logged r "store: chunk 3 ($(chunk 3 | cut -c1-16)..) of base ${bigsum:0:16}.. is bad on disk: expected sha256 $(chunk 3), got [0-9a-f]\{64\} ($MiB of $MiB bytes); dropped from the store, to be fetched again"
check "the truncated one is logged as short" \
	logged r "chunk 5 ($(chunk 5 | cut -c1-16)..) of base ${bigsum:0:16}.. is bad on disk: .*a short file, got .* ($((MiB / 2)) of $MiB bytes)"
check "the emptied one too" logged r "chunk 6 .* a short file, got .* (0 of $MiB bytes)"
check ".status counts three bad chunks" test "$(status "$MNT_r" .cache.bad_chunks)" = 3
wait_for 20 synced r
good=0
for n in 3 5 6; do
	f=$(chunk_file r $n)
	[ "$(sha256sum <"$f" | cut -c1-64)" = "$(chunk $n)" ] && good=$((good + 1))
done
check "and all three were fetched again, good" test "$good" = 3

# --- nor served to a peer ------------------------------------------------------
get() {	# get NAME N: HTTP status of chunk N from NAME's object server
	curl -s -o "$d/got" -w '%{http_code}' -H "X-Fed-Last-Resort: yes" \
		"http://$(eval echo "\$SERVE_$1")/objects/$(chunk "$2")"
}
check "a good chunk is served" test "$(get r 8)" = 200
spoil "$(chunk_file r 9)"
halve "$(chunk_file r 10)"
: >"$(chunk_file r 11)"
drop_caches
check "a corrupt chunk is not served (404, not 200)" test "$(get r 9)" = 404
check "a truncated chunk is not served" test "$(get r 10)" = 404
check "an emptied chunk is not served as 200 with 0 bytes" test "$(get r 11)" = 404
check "and the server logged them" logged r "chunk 11 .* is bad on disk"
check "the peer's own read still gets the right bytes" \
	cmp "$MNT_r/bases/$bigsum" "$d/big.img"

# --- after a restart: fsck ------------------------------------------------------
wait_for 20 synced r
kill "$PID_r"
wait_for 10 sh -c "! grep -q ' $MNT_r ' /proc/mounts"
wait_for 10 gone "$PID_r"
spoil "$(chunk_file r 12)"
"$BINDIR/fedfs" --fsck --state "$d/r.state" --json >"$d/fsck.json" 2>"$d/fsck.err"
rc=$?
check "fedfs --fsck exits non-zero when a chunk is bad" test "$rc" = 1
check "its JSON names the bad chunk" \
	test "$(jq -r '.bad, .dropped[0].chunk' "$d/fsck.json" | paste -sd' ')" = "1 $(chunk 12)"
check "it counted every chunk" test "$(jq -r .chunks "$d/fsck.json")" = 48
check "and dropped it" test ! -e "$(chunk_file r 12)"
check "it logs the bad chunk on stderr" grep -q "is bad on disk: expected sha256 $(chunk 12)" "$d/fsck.err"
"$BINDIR/fedfs" --fsck --state "$d/r.state" >"$d/fsck.txt" 2>&1
check "a second fsck finds all good (exit 0, a summary)" \
	grep -q "47 chunks .* checked: 47 good, 0 bad" "$d/fsck.txt"

# --- the background scrubber -----------------------------------------------------
spoil "$(chunk_file r 13)"
start_fedfs r 127.0.0.2 "$d" --scrub-rate 64M
check "the scrubber finds a bad chunk nobody reads" \
	wait_for 20 logged r "chunk 13 .* is bad on disk"
check "and .status says so" test "$(status "$MNT_r" .cache.scrub.bad)" -ge 1
check "the scrubber keeps to its rate" test "$(status "$MNT_r" .cache.scrub.rate)" = $((64 * MiB))

# --- a store on a small filesystem ---------------------------------------------------
small_fs "$d/tiny.state" 40 || { not_ok "a 40 MiB tmpfs mounts"; exit 1; }
start_fedfs tiny 127.0.0.3 "$d" --cache-max 100M --scrub-rate 0
check "--cache-max above what the filesystem holds is warned about at start" \
	logged tiny "--cache-max 100.0 MiB is more than the .* the store's filesystem can hold"
check "a 48 MiB object reads byte for byte through a 40 MiB store" \
	cmp "$MNT_tiny/bases/$bigsum" "$d/big.img"
check "the full disk made it evict" test "$(status "$MNT_tiny" .cache.disk_full)" -gt 0
check "evictions happened" test "$(status "$MNT_tiny" .cache.evictions)" -gt 0
errs=$(status "$MNT_tiny" "[.fetch.sources[] | select(.addr == \"$SERVE_owner\") | .errors][0]")
check "the local ENOSPC is not counted against the source" test "$errs" = 0
check "and no chunk failed" test "$(status "$MNT_tiny" .fetch.failed_chunks)" = 0

small_fs "$d/dflt.state" 40 || exit 1
start_fedfs dflt 127.0.0.4 "$d" --scrub-rate 0
max=$(status "$MNT_dflt" .cache.max_bytes)
check "without --cache-max the quota is 80% of the filesystem" \
	test "$max" -le $((32 * MiB)) -a "$max" -ge $((28 * MiB))
check "and the start says so" logged dflt "chunk store quota .*: 80% of the"
check "a 48 MiB object reads byte for byte within it" \
	cmp "$MNT_dflt/bases/$bigsum" "$d/big.img"
check "without the disk ever filling" test "$(status "$MNT_dflt" .cache.disk_full)" = 0

# --- a commitment the store could not keep is refused -------------------------------
mkdir -p "$d/import/files/srv"
head -c $((24 * MiB)) /dev/urandom >"$d/import/files/srv/blob"
import_disk "$d/import" "$d/import.img"
timeout -k 5 120 "$UML" "ubd0=$d/web.cow,$d/base.img" "ubd1r=$d/import.img" \
	root=/dev/ubda rw init=/init mem=128M con=null con0=null,fd:1 quiet \
	fed.import=/dev/ubdb 2>&1 | cat >"$d/import.log"
"$FED" snapshot pack --base "$d/base.img" --cow "$d/web.cow" \
	--service big.example.org:80 --guest-port 80 --kernel-hash "$ksum" \
	--key "$KEY_owner" -o "$d/web.fedsnap" --version 1 >/dev/null
cp "$d/web.fedsnap" "$MNT_owner/publish/"
small_fs "$d/c.state" 40 || exit 1
start_fedfs c 127.0.0.5 "$d" --scrub-rate 0
commitments() { curl -fsS "$AUTH/metrics" | awk '$1 == "fed_authority_commitments" { print $2 }'; }
n0=$(commitments)
check "committing a snapshot the store cannot hold pinned fails" \
	sh -c "! cp '$d/web.fedsnap' '$MNT_c/commit/web.fedsnap' 2>/dev/null"
check "with a clear message" \
	logged c "commit/web.fedsnap refused: the chunk store cannot hold it: .* MiB more must be pinned"
check "commit/ does not list it" test ! -e "$MNT_c/commit/web.fedsnap"
check "and the authority holds no commitment for it" test "$(commitments)" = "$n0"

#!/usr/bin/env bash
# fedfs end to end: an authority and several fedfs peers on loopback, each
# serving objects on its own 127.0.0.x address.  The owner publishes a
# base, a kernel and a snapshot; peers read them lazily and verified; a
# lying peer is caught; a crash mid-fetch leaves only verified chunks;
# the authority going away costs nothing cached and gives EIO, not a hang,
# for the rest; bad copies into publish/ and commit/ are refused; the
# quota evicts, but never a committed snapshot's chunks.
source "$(dirname "$0")/lib.sh"

need_uml
mktempdir d
MiB=1048576
COPYRANGE=$ROOT/${BUILD:-build}/tests/tools/copyrange
fails() { ! "$@"; }
# synced NAME: NAME's store has given every chunk it fetched its name (the
# syncer renames them out of tmp/ just after readers have them)
synced() { test -z "$(ls -A "$d/$1.state/chunks/tmp")"; }

start_authority "$d/auth" --publish-allowance 10 || { not_ok "the authority starts"; exit 1; }
bash "$ROOT/scripts/mkbase.sh" "$d/base.img" >/dev/null
cp "$UML" "$d/kernel"
head -c $((24 * MiB)) /dev/urandom >"$d/big.img"	# a base that does not dedup
for f in base.img big.img; do
	"$FED" trust add "$d/$f" --kind base --authority "$AUTH" --key "$ADMIN_KEY" >/dev/null
done
check "the admin trusts a kernel" \
	"$FED" trust add "$d/kernel" --kind kernel --authority "$AUTH" --key "$ADMIN_KEY"

start_fedfs owner 127.0.0.1 "$d"
check "fedfs mounts and registers" grep -q '"registered": true' "$MNT_owner/.status"
# the kernel's 128 KiB default would cut every sequential read in four
check "the mount reads ahead a chunk, not 128 KiB" \
	grep -qx 1024 "/sys/class/bdi/$(mountpoint -d "$MNT_owner")/read_ahead_kb"
check "the owner publishes the base" cp "$d/base.img" "$MNT_owner/publish/"
check "the owner publishes the kernel" cp "$d/kernel" "$MNT_owner/publish/"
cp "$d/big.img" "$MNT_owner/publish/"
ksum=$(sha256sum <"$d/kernel" | cut -c1-64)
bsum=$(sha256sum <"$d/base.img" | cut -c1-64)
bigsum=$(sha256sum <"$d/big.img" | cut -c1-64)

# the owner's service: a guest that wrote 6 MiB of random bytes
mkdir -p "$d/import/files/srv"
head -c $((6 * MiB)) /dev/urandom >"$d/import/files/srv/blob"
import_disk "$d/import" "$d/import.img"
timeout -k 5 60 "$UML" "ubd0=$d/web.cow,$d/base.img" "ubd1r=$d/import.img" \
	root=/dev/ubda rw init=/init mem=64M con=null con0=null,fd:1 quiet \
	fed.import=/dev/ubdb 2>&1 | cat >"$d/import.log"
"$FED" snapshot pack --base "$d/base.img" --cow "$d/web.cow" \
	--service www.example.org:80 --guest-port 80 --kernel-hash "$ksum" \
	--key "$KEY_owner" -o "$d/web.fedsnap" --version 1 --chunk-size $MiB >/dev/null
id=$("$FED" snapshot inspect "$d/web.fedsnap" --json | jq -r .id)
psize=$("$FED" snapshot inspect "$d/web.fedsnap" --json | jq -r .manifest.delta.size)
hlen=$(($(stat -c %s "$d/web.fedsnap") - psize))
check "the owner publishes the snapshot" cp "$d/web.fedsnap" "$MNT_owner/publish/"
check "it appears under deltas/" test -f "$MNT_owner/deltas/$id.fedsnap"
check "services/ links to it" \
	test "$(readlink "$MNT_owner/services/www.example.org:80")" = "../deltas/$id.fedsnap"
# a host of 247 bytes (legal) makes a service name longer than a name in
# fedfs may be: listed under deltas/ only, not cut into a name that could
# be another service's (nor a new node at every refresh)
label=$(printf 'a%.0s' $(seq 60))
"$FED" snapshot pack --base "$d/base.img" --cow "$d/web.cow" \
	--service "$label.$label.$label.$label.org:80" --guest-port 80 \
	--kernel-hash "$ksum" --key "$KEY_owner" -o "$d/long.fedsnap" \
	--version 1 --chunk-size $MiB >/dev/null
longid=$("$FED" snapshot inspect "$d/long.fedsnap" --json | jq -r .id)
check "a snapshot of a service with a 250-byte name is published" \
	cp "$d/long.fedsnap" "$MNT_owner/publish/"
check "and listed under deltas/" test -f "$MNT_owner/deltas/$longid.fedsnap"
check "but not under services/, cut" \
	sh -c "! ls '$MNT_owner/services' | grep -q '^$label'"
check "the log says why" grep -q "services/: ${label:0:40}.* too long a name" "$d/owner.state/fedfs.log"

start_fedfs a 127.0.0.2 "$d"
start_fedfs b 127.0.0.3 "$d"
wait_for 10 test -e "$MNT_a/deltas/$id.fedsnap"
check "peer a reads the delta, byte for byte" cmp "$MNT_a/deltas/$id.fedsnap" "$d/web.fedsnap"
check "peer a reads the base, byte for byte" cmp "$MNT_a/bases/$bsum" "$d/base.img"
check "peer a reads the kernel, byte for byte" cmp "$MNT_a/kernels/$ksum" "$d/kernel"
check "sizes are right without reading" \
	test "$(stat -c %s "$MNT_b/bases/$bigsum")" = $((24 * MiB))

# a partial read fetches only the chunk it touches
wait_for 10 test -e "$MNT_b/deltas/$id.fedsnap"
off=$(( (hlen + 3 * MiB + 8192) / 4096 * 4096 ))
dd if="$MNT_b/deltas/$id.fedsnap" of="$d/piece" bs=4096 skip=$((off / 4096)) count=1 2>/dev/null
dd if="$d/web.fedsnap" of="$d/want" bs=4096 skip=$((off / 4096)) count=1 2>/dev/null
check "a partial read returns the right bytes" cmp "$d/piece" "$d/want"
check "a partial read fetched exactly one chunk" \
	test "$(status "$MNT_b" .fetch.fetched_chunks)" = 1

# peers feed each other: four peers read the 24 MiB base at once; without
# the owner's limit of one send of a chunk per window (and the relays'
# four) it would send it four times
served() { curl -s "http://$SERVE_owner/metrics" | awk '$1 == "fedfs_served_bytes_total" { print $2 }'; }
for i in 0 1 2 3; do start_fedfs "s$i" "127.0.0.$((20 + i))" "$d"; done
before=$(served) readers=()
for i in 0 1 2 3; do
	eval "m=\$MNT_s$i"
	cmp "$m/bases/$bigsum" "$d/big.img" >"$d/spread.$i" 2>&1 &
	readers+=($!)
done
wait "${readers[@]}"
check "four peers reading at once all get the right bytes" \
	test -z "$(cat "$d"/spread.*)"
spread=$(( $(served) - before ))
echo "# the owner served $spread bytes for 4 x $((24 * MiB))"
check "and the owner served less than three copies of it" \
	test "$spread" -lt $((3 * 24 * MiB))
for i in 0 1 2 3; do eval "kill \$PID_s$i"; done

# a lying source: a peer whose store was tampered with
"$FED" snapshot pack --base "$d/base.img" --cow "$d/web.cow" \
	--service lies.example.org:80 --guest-port 80 --kernel-hash "$ksum" \
	--key "$KEY_owner" -o "$d/lies.fedsnap" --version 1 --chunk-size 262144 >/dev/null
lid=$("$FED" snapshot inspect "$d/lies.fedsnap" --json | jq -r .id)
cp "$d/lies.fedsnap" "$MNT_owner/publish/"
# the liar serves what its disk holds, unchecked: its own store checks
# would catch the spoiling and send nothing bad (fedfs_store.sh tests that)
start_fedfs liar 127.0.0.4 "$d" --no-verify-store
wait_for 10 test -e "$MNT_liar/deltas/$lid.fedsnap"
cat "$MNT_liar/deltas/$lid.fedsnap" >/dev/null
wait_for 10 synced liar	# every chunk under its name, to be spoiled
for f in "$d"/liar.state/chunks/??/*; do
	head -c "$(stat -c %s "$f")" /dev/urandom >"$f.x" && mv "$f.x" "$f"
done
start_fedfs c 127.0.0.5 "$d"
wait_for 10 test -e "$MNT_c/deltas/$lid.fedsnap"
check "reads through a lying source still return the right bytes" \
	cmp "$MNT_c/deltas/$lid.fedsnap" "$d/lies.fedsnap"
check ".status names the lying source bad" \
	test "$(status "$MNT_c" ".fetch.bad_sources[].addr" | sort -u)" = "$SERVE_liar"

# kill -9 in the middle of a large fetch
start_fedfs k 127.0.0.6 "$d"
wait_for 10 test -e "$MNT_k/bases/$bigsum"
cat "$MNT_k/bases/$bigsum" >/dev/null 2>&1 &
reader=$!
wait_for 20 test "$(status "$MNT_k" .fetch.fetched_chunks 2>/dev/null || echo 0)" -ge 2
kill -9 "$PID_k"
wait "$reader"
fusermount3 -u -z "$MNT_k"
bad=0
for f in "$d"/k.state/chunks/??/*; do
	[ -f "$f" ] || continue
	[ "$(sha256sum <"$f" | cut -c1-64)" = "$(basename "$f")" ] || bad=$((bad + 1))
done
check "after kill -9, every chunk in the store matches its name" test "$bad" = 0
# what kill -9 left in tmp/ (chunks written, not yet synced and named:
# there is seldom one, so add one cut short, as a crash mid-write leaves)
head -c 1000 "$d/big.img" >"$d/k.state/chunks/tmp/999999.1"
left=$(ls -A "$d/k.state/chunks/tmp")
start_fedfs k 127.0.0.6 "$d"
gone=yes
for f in $left; do [ -e "$d/k.state/chunks/tmp/$f" ] && gone=no; done
check "the temporaries a crash left are removed at start" test "$gone" = yes
check "after remounting, the interrupted read completes" \
	cmp "$MNT_k/bases/$bigsum" "$d/big.img"
check "and once the store has synced what it fetched, no temporary is left" \
	wait_for 10 synced k

# publish/ and commit/ refuse what is not valid, and keep nothing of it
refused() {	# refused WHAT FILE DEST: cp must fail and deltas/ not change
	local before after
	before=$(ls "$MNT_owner/deltas" | wc -l)
	if cp "$2" "$3" 2>/dev/null; then not_ok "$1 is refused"; return; fi
	after=$(ls "$MNT_owner/deltas" | wc -l)
	check "$1 is refused" test "$before" = "$after"
}
head -c 5000 /dev/urandom >"$d/garbage"
refused "a garbage file in publish/" "$d/garbage" "$MNT_owner/publish/garbage"
refused "a garbage file in commit/" "$d/garbage" "$MNT_a/commit/garbage"
sed 's/"version":1}/"version":2}/' "$d/web.fedsnap" >"$d/tampered-manifest.fedsnap"
refused "a tampered manifest" "$d/tampered-manifest.fedsnap" "$MNT_owner/publish/t1.fedsnap"
cp "$d/web.fedsnap" "$d/tampered-chunk.fedsnap"
flip_byte "$d/tampered-chunk.fedsnap" $((hlen + 5000))
refused "a tampered chunk" "$d/tampered-chunk.fedsnap" "$MNT_owner/publish/t2.fedsnap"
refused "a tampered chunk in commit/" "$d/tampered-chunk.fedsnap" "$MNT_a/commit/t2.fedsnap"
"$FED" keygen -o "$d/other.key" >/dev/null
"$FED" snapshot pack --base "$d/base.img" --cow "$d/web.cow" \
	--service www.example.org:80 --guest-port 80 --kernel-hash "$ksum" \
	--key "$d/other.key" -o "$d/other.fedsnap" --version 5 >/dev/null
head -c $((10 + $(head -2 "$d/other.fedsnap" | tail -1 | wc -c))) "$d/other.fedsnap" >"$d/badsig.fedsnap"
tail -c +$((hlen + 1 - 134)) "$d/web.fedsnap" | head -c 134 >/dev/null
# other's manifest with the owner's signature line: a bad signature
{ head -2 "$d/other.fedsnap"; sed -n 3p "$d/web.fedsnap"; tail -c +$(( $(head -3 "$d/other.fedsnap" | wc -c) + 1 )) "$d/other.fedsnap"; } >"$d/badsig.fedsnap"
refused "a bad signature" "$d/badsig.fedsnap" "$MNT_owner/publish/t3.fedsnap"
refused "another owner's snapshot in this owner's publish/" "$d/other.fedsnap" \
	"$MNT_owner/publish/t4.fedsnap"
bash "$ROOT/scripts/mkbase.sh" "$d/untrusted.img" 32 >/dev/null
timeout -k 5 60 "$UML" "ubd0=$d/u.cow,$d/untrusted.img" "ubd1r=$d/import.img" \
	root=/dev/ubda rw init=/init mem=64M con=null con0=null,fd:1 quiet \
	fed.import=/dev/ubdb 2>&1 | cat >/dev/null
"$FED" snapshot pack --base "$d/untrusted.img" --cow "$d/u.cow" \
	--service www.example.org:80 --guest-port 80 --kernel-hash "$ksum" \
	--key "$KEY_owner" -o "$d/untrusted.fedsnap" --version 7 >/dev/null
refused "a snapshot over an untrusted base" "$d/untrusted.fedsnap" "$MNT_owner/publish/t5.fedsnap"
refused "a kernel nobody trusts" "$d/garbage" "$MNT_owner/publish/vmlinux"
refused "a 230-character name" "$d/web.fedsnap" "$MNT_owner/publish/$(printf 'n%.0s' $(seq 230))"
refused "a name with a slash" "$d/web.fedsnap" "$MNT_owner/publish/sub/web.fedsnap"
refused "'..' as a name" "$d/web.fedsnap" "$MNT_owner/publish/.."
# a file being copied in has one open, its writer's
exec 3>"$MNT_owner/publish/busy.img"
check "a file being copied in cannot be opened again meanwhile" \
	fails cat "$MNT_owner/publish/busy.img"
exec 3>&-
check ".status counts the refusals" \
	test "$(status "$MNT_owner" .ingest.refused)" -ge 8

# commit/: kept across restarts, rm withdraws
check "peer a commits to the snapshot from deltas/" \
	cp "$MNT_a/deltas/$id.fedsnap" "$MNT_a/commit/web.fedsnap"
check "commit/ lists it" test -f "$MNT_a/commit/web.fedsnap"
check "cp from deltas/ went through copy_file_range: not hashed again" \
	grep -q "web.fedsnap: .*copied from fedfs's own verified chunks" "$d/a.state/fedfs.log"
# a copy taken from fedfs is trusted without hashing only when every byte
# came from the object, in order
check "a copy from deltas/ with a payload byte changed after it is refused" \
	fails "$COPYRANGE" "$MNT_b/deltas/$id.fedsnap" "$MNT_b/commit/poked.fedsnap" \
	--poke $((hlen + 5000))
check "and the log says which chunk was wrong" \
	grep -q 'commit/poked.fedsnap refused: .*chunk 0' "$d/b.state/fedfs.log"
check "a copy from deltas/ made out of order is checked in full, and taken" \
	"$COPYRANGE" "$MNT_b/deltas/$id.fedsnap" "$MNT_b/commit/split.fedsnap" \
	--split $((hlen + 100))
check "and holds the right bytes" cmp "$MNT_b/commit/split.fedsnap" "$d/web.fedsnap"
check "and its log line does not claim a copy" \
	sh -c "grep 'split.fedsnap: ' '$d/b.state/fedfs.log' | grep -vq 'not hashed again'"
rm "$MNT_b/commit/split.fedsnap"
# the same snapshot committed under two names is one commitment: taking one
# name away leaves it, taking the last withdraws it
commitments() { curl -fsS "$AUTH/metrics" | awk '$1 == "fed_authority_commitments" { print $2 }'; }
n0=$(commitments)
cp "$MNT_b/deltas/$id.fedsnap" "$MNT_b/commit/one.fedsnap"
cp "$MNT_b/deltas/$id.fedsnap" "$MNT_b/commit/two.fedsnap"
check "a snapshot committed under two names is one commitment" \
	test "$(commitments)" = $((n0 + 1))
rm "$MNT_b/commit/one.fedsnap"
check "rm of one name leaves the commitment, which the other stands for" \
	test "$(commitments)" = $((n0 + 1))
check "and commit/ still lists the other" test -f "$MNT_b/commit/two.fedsnap"
rm "$MNT_b/commit/two.fedsnap"
check "rm of the last name withdraws it" test "$(commitments)" = "$n0"
# a snapshot new to peer a's catalogue, committed from a file and followed
# at once by a restart (before any catalogue refresh could keep it)
"$FED" snapshot pack --base "$d/base.img" --cow "$d/web.cow" \
	--service fresh.example.org:80 --guest-port 80 --kernel-hash "$ksum" \
	--key "$KEY_owner" -o "$d/fresh.fedsnap" --version 1 --chunk-size $MiB >/dev/null
cp "$d/fresh.fedsnap" "$MNT_owner/publish/"
cp "$d/fresh.fedsnap" "$MNT_a/commit/fresh.fedsnap"
kill "$PID_a"
wait_for 10 sh -c "! grep -q ' $MNT_a ' /proc/mounts"
start_fedfs a 127.0.0.2 "$d"
check "the commitment is still there after a restart" cmp "$MNT_a/commit/web.fedsnap" "$d/web.fedsnap"
check "and one made just before it, of a snapshot new to the peer" \
	cmp "$MNT_a/commit/fresh.fedsnap" "$d/fresh.fedsnap"
rm "$MNT_a/commit/fresh.fedsnap"
check "rm commit/ withdraws" rm "$MNT_a/commit/web.fedsnap"
check "and it is gone" test ! -e "$MNT_a/commit/web.fedsnap"

# the quota evicts, but never a committed snapshot's chunks
start_fedfs q 127.0.0.7 "$d" --cache-max 8M
wait_for 10 test -e "$MNT_q/deltas/$id.fedsnap"
cp "$MNT_q/deltas/$id.fedsnap" "$MNT_q/commit/web.fedsnap"
check "a quota-limited peer still reads a base larger than its cache" \
	cmp "$MNT_q/bases/$bigsum" "$d/big.img"
check "evictions happened" test "$(status "$MNT_q" .cache.evictions)" -gt 0
wait_for 10 synced q
missing=0
for h in $("$FED" snapshot inspect "$d/web.fedsnap" --json | jq -r '.manifest.delta.chunks[]'); do
	[ -f "$d/q.state/chunks/${h:0:2}/$h" ] || missing=$((missing + 1))
done
check "the committed snapshot's chunks were all kept" test "$missing" = 0
# a base larger than the quota, published by that peer: all of it stays
# (its chunks are pinned before they are stored: stored first, the last
# ones evicted the first)
check "a quota-limited peer publishes a base larger than its cache" \
	cp "$d/big.img" "$MNT_q/publish/"
kept=0
for h in $(curl -s "$AUTH/v1/trusted" | jq -r --arg s "$bigsum" \
	'.. | objects | select(.sha256? == $s) | .index.chunks[]'); do
	[ -f "$d/q.state/chunks/${h:0:2}/$h" ] && kept=$((kept + 1))
done
check "and all 24 of its chunks were kept" test "$kept" = 24

# the authority hangs (stopped: connections are taken, never answered):
# listings that ask it for news wait for one bounded attempt at most, not
# one after another, each as long as curl's default
stale() {	# the last refresh was 3 s ago or more: a listing asks again
	local r
	r=$(status "$MNT_a" .catalogue.refreshed)
	[ $(($(date +%s) - $(date -d "$r" +%s))) -ge 3 ]
}
wait_for 20 stale
kill -STOP "$AUTH_PID"
on_exit "kill -CONT $AUTH_PID 2>/dev/null"
start=$SECONDS
pids=()
for dir in kernels bases deltas services; do
	ls "$MNT_a/$dir" >/dev/null &
	pids+=($!)
done
wait "${pids[@]}"	# not the authority, a child of this shell too
check "with the authority hung, four listings at once are answered within 6 s" \
	test $((SECONDS - start)) -le 6
kill -CONT "$AUTH_PID"

# the authority goes away
start_fedfs n 127.0.0.8 "$d"
wait_for 10 test -e "$MNT_n/kernels/$ksum"
kill "$AUTH_PID"
wait_for 10 sh -c "! kill -0 $AUTH_PID 2>/dev/null"
check "with the authority down, cached files still read" \
	cmp "$MNT_a/bases/$bsum" "$d/base.img"
start=$SECONDS
if timeout 30 cat "$MNT_n/kernels/$ksum" >/dev/null 2>&1; then
	not_ok "with the authority down, an uncached file fails"
else
	check "with the authority down, an uncached file fails with EIO within 15 s" \
		test $((SECONDS - start)) -lt 15
fi

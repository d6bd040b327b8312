#!/usr/bin/env bash
# Benchmark fedfs on a 256 MiB delta (median of 3 runs, in one run):
#   (a) cold sequential read through fedfs, fetching from one peer over
#       loopback            vs (b) curl of the same chunks from that peer
#       (and, for reference, curl piped into openssl's SHA-256: fetching
#       and verifying the same bytes with standard tools)
#   (c) warm read through fedfs (chunks cached, page cache dropped)
#                           vs (d) cat of the same bytes from local disk
#   (a') and (c') the same reads by a peer started with --no-verify-store
#       (a knob for this benchmark only: chunks read from its store are
#       not hashed again), which says what verify-on-read costs
# and, with 8 peers reading the delta at once, the bytes the owner served
# (goal: at most 2x the delta: peers should fetch from each other).
#
#   bench/fedfs.sh [MIB]    (default 256)
set -Eeuo pipefail
trap 'echo "bench/fedfs.sh: line $LINENO failed: $BASH_COMMAND" >&2' ERR
source "$(dirname "$0")/../tests/e2e/lib.sh"
MIB=${1:-256}
mktempdir d
now() { date +%s.%N; }
secs() { echo "$(now) - $1" | bc -l; }
median() { printf '%s\n' "$@" | sort -g | sed -n "$(( ($# + 1) / 2 ))p"; }
rate() { echo "scale=1; $1 / 1048576 / $2" | bc -l; }
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }

echo "setting up: authority, owner, a $MIB MiB delta..."
start_authority "$d/auth" --publish-allowance 10 >/dev/null
bash "$ROOT/scripts/mkbase.sh" "$d/base.img" $((MIB * 2 + 64)) >/dev/null
need_uml
cp "$UML" "$d/kernel"
"$FED" trust add "$d/base.img" --kind base --authority "$AUTH" --key "$ADMIN_KEY" >/dev/null
"$FED" trust add "$d/kernel" --kind kernel --authority "$AUTH" --key "$ADMIN_KEY" >/dev/null
mkdir -p "$d/import/files/srv"
head -c $((MIB * 1048576)) /dev/urandom >"$d/import/files/srv/blob"
import_disk "$d/import" "$d/import.img"
rm -rf "$d/import"
timeout 600 "$UML" "ubd0=$d/web.cow,$d/base.img" "ubd1r=$d/import.img" \
	root=/dev/ubda rw init=/init mem=256M con=null con0=null,fd:1 quiet \
	fed.import=/dev/ubdb 2>&1 | cat >"$d/import.log"
rm -f "$d/import.img"
start_fedfs owner 127.0.0.1 "$d"
"$FED" snapshot pack --base "$d/base.img" --cow "$d/web.cow" \
	--service bench.example.org:80 --guest-port 80 \
	--kernel-hash "$(sha256sum <"$d/kernel" | cut -c1-64)" \
	--key "$KEY_owner" -o "$d/web.fedsnap" >/dev/null
cp "$d/web.fedsnap" "$MNT_owner/publish/"
id=$("$FED" snapshot inspect "$d/web.fedsnap" --json | jq -r .id)
size=$(stat -c %s "$d/web.fedsnap")
chunks=$("$FED" snapshot inspect "$d/web.fedsnap" --json | jq -r '.manifest.delta.chunks[]')
echo "delta: $size bytes, $(wc -w <<<"$chunks") chunks"

# (b) must move the bytes: the owner has just sent each chunk to the reader
# of (a) and would answer 503 for its spread window (objsrv.c), so curl
# says what a peer with no other source says; -f and the byte count make
# sure every chunk came whole
curl_args=(-fsS -H "X-Fed-Last-Resort: yes" -w '%{size_download}\n')
for h in $chunks; do curl_args+=(-o /dev/null "http://$SERVE_owner/objects/$h"); done
# (v), for reference: what fetching and verifying the same bytes costs
# with standard tools, one after the other (openssl: SHA-256 at the speed
# of libgcrypt's here; coreutils' sha256sum is 4x slower)
verify_args=(-fsS -H "X-Fed-Last-Resort: yes")
for h in $chunks; do verify_args+=("http://$SERVE_owner/objects/$h"); done
payload=$("$FED" snapshot inspect "$d/web.fedsnap" --json | jq -r .manifest.delta.size)

ta=() tb=() tc=() td=() tv=() tan=() tcn=()
for run in 1 2 3; do
	rm -rf "$d/r$run.state"
	start_fedfs "r$run" 127.0.0.2 "$d"
	eval "m=\$MNT_r$run"
	wait_for 10 test -e "$m/deltas/$id.fedsnap"
	drop_caches
	s=$(now); cat "$m/deltas/$id.fedsnap" >/dev/null; ta+=("$(secs "$s")")
	drop_caches
	s=$(now); got=$(curl "${curl_args[@]}" | paste -sd+ | bc); tb+=("$(secs "$s")")
	[ "$got" = "$payload" ] || { echo "curl got $got bytes, not $payload"; exit 1; }
	drop_caches
	s=$(now); curl "${verify_args[@]}" | openssl dgst -sha256 >/dev/null; tv+=("$(secs "$s")")
	cmp "$m/deltas/$id.fedsnap" "$d/web.fedsnap"
	drop_caches
	s=$(now); cat "$m/deltas/$id.fedsnap" >/dev/null; tc+=("$(secs "$s")")
	drop_caches
	s=$(now); cat "$d/web.fedsnap" >/dev/null; td+=("$(secs "$s")")
	eval "kill \$PID_r$run"
	wait_for 10 sh -c "! grep -q ' $m ' /proc/mounts"
	# the same reads, unverified: a fresh peer, cold then warm
	rm -rf "$d/n$run.state"
	start_fedfs "n$run" 127.0.0.3 "$d" --no-verify-store
	eval "m=\$MNT_n$run"
	wait_for 10 test -e "$m/deltas/$id.fedsnap"
	drop_caches
	s=$(now); cat "$m/deltas/$id.fedsnap" >/dev/null; tan+=("$(secs "$s")")
	drop_caches
	s=$(now); cat "$m/deltas/$id.fedsnap" >/dev/null; tcn+=("$(secs "$s")")
	eval "kill \$PID_n$run"
	wait_for 10 sh -c "! grep -q ' $m ' /proc/mounts"
done
a=$(median "${ta[@]}") b=$(median "${tb[@]}") c=$(median "${tc[@]}") dd=$(median "${td[@]}")
v=$(median "${tv[@]}") an=$(median "${tan[@]}") cn=$(median "${tcn[@]}")
printf '\n%-52s %8s %9s\n' "read of the $MIB MiB delta (median of 3)" seconds MiB/s
printf '%-52s %8.3f %9s\n' "(a) fedfs, cold: fetched from one peer, verified" "$a" "$(rate "$size" "$a")"
printf '%-52s %8.3f %9s\n' "(b) curl of the same chunks from that peer" "$b" "$(rate "$size" "$b")"
printf '%-52s %8.3f %9s\n' "    (for reference: curl | openssl sha256, same)" "$v" "$(rate "$size" "$v")"
printf '%-52s %8.3f %9s\n' "(a') fedfs, cold, --no-verify-store" "$an" "$(rate "$size" "$an")"
printf '%-52s %8.3f %9s\n' "(c) fedfs, warm: from the local chunk store" "$c" "$(rate "$size" "$c")"
printf '%-52s %8.3f %9s\n' "(c') fedfs, warm, --no-verify-store" "$cn" "$(rate "$size" "$cn")"
printf '%-52s %8.3f %9s\n' "(d) cat of the same bytes from local disk" "$dd" "$(rate "$size" "$dd")"
printf 'a/b = %.2f (goal >= 0.8)   c/d = %.2f (goal >= 0.9)\n' \
	"$(echo "$b / $a" | bc -l)" "$(echo "$dd / $c" | bc -l)"
printf "verify-on-read costs: cold a/a' = %.2f, warm c/c' = %.2f; unverified c'/d = %.2f\n" \
	"$(echo "$a / $an" | bc -l)" "$(echo "$c / $cn" | bc -l)" "$(echo "$dd / $cn" | bc -l)"

echo
echo "8 peers read the delta at once..."
served() { curl -s "http://$SERVE_owner/metrics" | awk '$1 == "fedfs_served_bytes_total" { print $2 }'; }
for i in 0 1 2 3 4 5 6 7; do
	start_fedfs "p$i" "127.0.0.$((10 + i))" "$d"
done
for i in 0 1 2 3 4 5 6 7; do
	eval "wait_for 10 test -e \$MNT_p$i/deltas/$id.fedsnap"
done
before=$(served)
s=$(now)
pids=()
for i in 0 1 2 3 4 5 6 7; do
	eval "cat \$MNT_p$i/deltas/$id.fedsnap >/dev/null &"
	pids+=($!)
done
wait "${pids[@]}"
t=$(secs "$s")
after=$(served)
printf 'owner served %s bytes for 8 x %s: %.2f x the delta (goal <= 2); all done in %.2f s\n' \
	"$((after - before))" "$size" "$(echo "($after - $before) / $size" | bc -l)" "$t"

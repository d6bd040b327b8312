#!/usr/bin/env bash
# Running-state resume (QEMU) against booting (UML), the same busybox httpd
# service, in the same run:
#
#   warm  commit-to-first-HTTP-200 through the host port with the snapshot,
#         base and kernel cached on the peer (fedfs store and the vmrunner's
#         kernel cache); withdraw, wait, commit again: RUNS times each kind
#   cold  a fresh peer (empty fedfs store, empty vmrunner state) resuming
#         the QEMU snapshot: everything fetched from the owner over loopback
#   size  the .fedsnap of each kind (QEMU: disk delta + memory state)
#
# Runs in a network namespace it makes (like tests/e2e/qemu.sh).
# RUNS=N (default 5).  Goal (issue 7): resume under 0.3 s and at least 5x
# faster than the UML boot.
source "$(dirname "$0")/../tests/e2e/lib.sh"
source "$(dirname "$0")/lib.sh"

RUNS=${RUNS:-5}
need_uml

if [ -z "${FED_QEMU_BENCH_NS:-}" ]; then
	if [ "$(id -u)" != 0 ] ||
		! command -v qemu-system-x86_64 >/dev/null; then
		echo "bench/qemu.sh: needs root and qemu-system-x86_64; skipped"
		exit 0
	fi
	ns=fedqb$$
	ip netns add "$ns" || exit 1
	on_exit "ip netns del $ns"
	on_exit "for p in \$(ip netns pids $ns); do kill -9 \$p; done; sleep 0.2"
	on_exit "for n in \$(ip netns list | awk '{print \$1}' | grep '^fed0a4f'); do
		for p in \$(ip netns pids \$n); do kill -9 \$p; done; ip netns del \$n; done"
	ip netns exec "$ns" ip link set lo up
	FED_QEMU_BENCH_NS=$ns nsenter --net="/run/netns/$ns" bash "$0"
	exit $?
fi

mktempdir d
start_vmrunner() {	# STATE LOG MNT KEY
	"$BINDIR/fed-vmrunner" --fed "$3" --state "$1" --authority "$AUTH" \
		--key "$4" --public-addr 127.0.0.2 --lease-range 10.79.0.0/16 -f \
		>>"$2" 2>&1 &
	VMR_PID=$!
	on_exit "kill $VMR_PID; sleep 1"
	wait_for 10 test -e "$1/status.json"
}
# commit_once MNT STATE ID FILE: seconds from cp to the first 200, then
# withdraw and wait until it is released
commit_once() {
	local mnt=$1 state=$2 id=$3 file=$4 t0 t
	t0=$(now)
	cp "$mnt/deltas/$id.fedsnap" "$mnt/commit/$file"
	echo "$(now) - $t0" | bc >>"$d/cp.$file"	# fedfs takes the copy in
	t=$(first_200 "$state" "$file" "$t0" "$d/split.$file") || { echo "no 200 for $file" >&2; return 1; }
	rm "$mnt/commit/$file"
	wait_for 30 sh -c "! jq -e '.vms[] | select(.file==\"$file\")' '$state/status.json' >/dev/null"
	# and its processes gone: a UML or QEMU still freeing its memory
	# would slow the next kind's start on this 2-core machine ("vm[s]":
	# the sh -c running pgrep must not match itself, or this waits 30 s)
	wait_for 30 sh -c "! pgrep -f '$state/vm[s]/' >/dev/null"
	echo "$t"
}

qemu_kernel_object qk || exit 1
bash "$ROOT/scripts/mkbase.sh" "$d/base.img" >/dev/null
cp "$qk" "$d/qkernel"
cp "$UML" "$d/kernel"
"$FED" keygen -o "$d/owner.key" >/dev/null
mkdir -p "$d/web/var/www"
run='t=$(cat /proc/sys/kernel/random/uuid); echo "token $t" >/var/www/index.html; httpd -f -p 80 -h /var/www'
t0=$(now)
"$FED" snapshot create --running --kernel "$d/qkernel" --uml-kernel "$UML" --base "$d/base.img" \
	--files "$d/web" --run "$run" --service www.example.org:80 --guest-port 80 \
	--key "$d/owner.key" -o "$d/q.fedsnap" --version 1 --timeout 300 \
	--json >"$d/q.json" || exit 1
create_q=$(echo "$(now) - $t0" | bc)
t0=$(now)
"$FED" snapshot create --kernel "$d/kernel" --base "$d/base.img" \
	--files "$d/web" --run "$run" --service uml.example.org:80 --guest-port 80 \
	--key "$d/owner.key" -o "$d/u.fedsnap" --version 1 --json >"$d/u.json" || exit 1
create_u=$(echo "$(now) - $t0" | bc)
qid=$(jq -r .id "$d/q.json")
uid=$(jq -r .id "$d/u.json")

start_authority "$d/auth" --publish-allowance 10 || exit 1
for k in base.img:base kernel:kernel qkernel:kernel; do
	"$FED" trust add "$d/${k%%:*}" --kind "${k##*:}" --authority "$AUTH" \
		--key "$ADMIN_KEY" >/dev/null
done
start_fedfs owner 127.0.0.1 "$d"
for f in base.img kernel qkernel q.fedsnap u.fedsnap; do cp "$d/$f" "$MNT_owner/publish/"; done

# warm: one peer, everything cached by a first commit of each kind
start_fedfs peer 127.0.0.2 "$d"
wait_for 30 test -e "$MNT_peer/deltas/$uid.fedsnap" || { echo "peer's fedfs not up"; exit 1; }
start_vmrunner "$d/vmr" "$d/vmr.log" "$MNT_peer" "$KEY_peer"
vmr=$VMR_PID
commit_once "$MNT_peer" "$d/vmr" "$qid" q.fedsnap >/dev/null || exit 1
commit_once "$MNT_peer" "$d/vmr" "$uid" u.fedsnap >/dev/null || exit 1
qw=() uw=()
for ((i = 1; i <= RUNS; i++)); do
	t=$(commit_once "$MNT_peer" "$d/vmr" "$qid" q.fedsnap) || exit 1
	qw+=("$t")
	t2=$(commit_once "$MNT_peer" "$d/vmr" "$uid" u.fedsnap) || exit 1
	uw+=("$t2")
	printf 'warm run %d: QEMU resume %.2f s, UML boot %.2f s\n' "$i" "$t" "$t2"
done
kill "$vmr"
wait_for 30 sh -c "! kill -0 $vmr 2>/dev/null"

# cold: fresh peers, the QEMU snapshot fetched from the owner
qc=()
for ((i = 1; i <= 2; i++)); do
	start_fedfs "c$i" "127.0.0.$((i + 2))" "$d"
	mnt_var=MNT_c$i key_var=KEY_c$i
	wait_for 30 test -e "${!mnt_var}/deltas/$qid.fedsnap" || { echo "c$i not up"; exit 1; }
	start_vmrunner "$d/vmrc$i" "$d/vmrc$i.log" "${!mnt_var}" "${!key_var}"
	t=$(commit_once "${!mnt_var}" "$d/vmrc$i" "$qid" q.fedsnap) || exit 1
	qc+=("$t")
	printf 'cold run %d: QEMU resume %.2f s\n' "$i" "$t"
	kill "$VMR_PID"
	wait_for 30 sh -c "! kill -0 $VMR_PID 2>/dev/null"
done

qm=$(printf '%s\n' "${qw[@]}" | median)
um=$(printf '%s\n' "${uw[@]}" | median)
echo "vmrunner's own view of the QEMU resumes (from reading the commit to the service's first accept):"
grep -h -o '[0-9.]* s after the commit (check and unpack .*memory state.*)' "$d"/vmr.log |
	sed 's/^/  /' | tail -n "$RUNS"
printf 'cp into commit/ alone (fedfs checks the copy at close), median: QEMU %.2f s, UML %.2f s\n' \
	"$(median <"$d/cp.q.fedsnap")" "$(median <"$d/cp.u.fedsnap")"
# the warm runs' split (the first commit of each kind, which fills the
# caches, and the cold runs are left out)
warm_split() { sed -n "2,$((RUNS + 1))p" "$d/split.$1" | cut -d' ' -f"$2" | median; }
printf 'commit -> host port in status.json, median: QEMU %.2f s, UML %.2f s; then the first GET: QEMU %.2f s, UML %.2f s\n' \
	"$(warm_split q.fedsnap 1)" "$(warm_split u.fedsnap 1)" \
	"$(warm_split q.fedsnap 2)" "$(warm_split u.fedsnap 2)"
echo "load average during the run: $(cut -d' ' -f1-3 /proc/loadavg)"
printf 'snapshot create: QEMU --running %.1f s (import boot + QEMU boot + save + pack), UML %.1f s\n' \
	"$create_q" "$create_u"
printf 'snapshot size: QEMU %s bytes (payload %s: disk delta + device state %s bytes + memory %s bytes, %s of it not zero), UML %s bytes (payload %s)\n' \
	"$(stat -c %s "$d/q.fedsnap")" "$(jq .payload_bytes "$d/q.json")" \
	"$(jq .state_bytes "$d/q.json")" "$(jq .ram_bytes "$d/q.json")" \
	"$(du -B1 "$d"/vmr/vms/"$qid"/ram.img | cut -f1)" \
	"$(stat -c %s "$d/u.fedsnap")" "$(jq .payload_bytes "$d/u.json")"
printf 'commit -> first HTTP 200, warm, median of %d: QEMU resume %.2f s, UML boot %.2f s (%.1fx; goal: resume < 0.3 s, >= 5x)\n' \
	"$RUNS" "$qm" "$um" "$(echo "$um / $qm" | bc -l)"
printf 'commit -> first HTTP 200, cold cache over loopback (QEMU): %s s\n' \
	"$(printf '%.2f ' "${qc[@]}")"

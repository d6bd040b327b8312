#!/usr/bin/env bash
# Time from `cp delta commit/` to the first HTTP 200 through the host port
# the vmrunner maps, for a busybox httpd snapshot:
#
#   cold  a fresh peer: fedfs with an empty store (the base, kernel and
#         delta are fetched from the owner, lazily, chunk by chunk as UML
#         reads them) and a vmrunner with an empty kernel cache
#   warm  the same peer again after a withdraw: base, kernel and delta are
#         in fedfs's store, the kernel in the vmrunner's cache
#
# each for a jailed vmrunner (the default) and one with --no-jail, taken in
# turn: the jail's cost.  Also the relay's throughput and request rate into
# each VM's network namespace, and the jailed VM's host memory (its cgroup).
#
# Runs in a network namespace it makes (like tests/e2e/vmrunner.sh) and
# prints each run and the median.  RUNS=N (default 3) per case.
# Goal (issue 5): warm under 3 s; UML alone boots in about 2 s here.
source "$(dirname "$0")/../tests/e2e/lib.sh"
source "$(dirname "$0")/lib.sh"

RUNS=${RUNS:-3}
need_uml

if [ -z "${FED_VMRUNNER_NS:-}" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "bench/vmrunner.sh: needs root; skipped"
		exit 0
	fi
	ns=fedvmb$$
	ip netns add "$ns" || exit 1
	on_exit "ip netns del $ns"
	on_exit "for p in \$(ip netns pids $ns); do kill -9 \$p; done; sleep 0.2"
	ip netns exec "$ns" ip link set lo up
	FED_VMRUNNER_NS=$ns nsenter --net="/run/netns/$ns" bash "$0"
	exit $?
fi

mktempdir d

bash "$ROOT/scripts/mkbase.sh" "$d/base.img" >/dev/null
cp "$UML" "$d/kernel"
"$FED" keygen -o "$d/owner.key" >/dev/null
mkdir -p "$d/web/var/www"
echo "bench page" >"$d/web/var/www/index.html"
head -c $((8 << 20)) /dev/urandom >"$d/web/var/www/big.bin"	# for throughput
"$FED" snapshot create --kernel "$d/kernel" --base "$d/base.img" \
	--files "$d/web" --run 'httpd -f -p 80 -h /var/www' \
	--service www.example.org:80 --guest-port 80 --key "$d/owner.key" \
	-o "$d/web.fedsnap" --version 1 >/dev/null || exit 1
id=$("$FED" snapshot inspect "$d/web.fedsnap" --json | jq -r .id)
# baseline: UML alone, local base, boot to power-off (fed.probe)
base_runs=()
for ((i = 1; i <= RUNS; i++)); do
	rm -f "$d/probe.cow"
	t0=$(now)
	timeout -k 5 60 "$UML" "ubd0=$d/probe.cow,$d/base.img" root=/dev/ubda rw \
		init=/init mem=64M con=null con0=null,fd:1 quiet \
		fed.probe=/etc/hostname 2>&1 | cat >/dev/null
	base_runs+=("$(echo "$(now) - $t0" | bc)")
done
rm -f "$d/probe.cow"

start_authority "$d/auth" --publish-allowance 10 || exit 1
"$FED" trust add "$d/base.img" --kind base --authority "$AUTH" --key "$ADMIN_KEY" >/dev/null
"$FED" trust add "$d/kernel" --kind kernel --authority "$AUTH" --key "$ADMIN_KEY" >/dev/null
start_fedfs owner 127.0.0.1 "$d"
for f in base.img kernel web.fedsnap; do cp "$d/$f" "$MNT_owner/publish/"; done

# relay_figures STATE LABEL: the host port's throughput (8 MiB, median of
# 3) and request rate (wrk -c16, 3 s) into the VM of STATE
relay_figures() {
	local hp mbs=() k m rps=""
	hp=$(jq -r '.vms[0].host_port' "$1/status.json")
	for k in 1 2 3; do
		mbs+=("$(curl -s -o /dev/null -w '%{speed_download}' "http://127.0.0.1:$hp/big.bin")")
	done
	m=$(printf '%s\n' "${mbs[@]}" | median)
	command -v wrk >/dev/null &&
		rps=$(wrk -t1 -c16 -d3s "http://127.0.0.1:$hp/" 2>/dev/null | awk '/Requests\/sec/ {print $2}')
	printf '  %-9s 8 MiB through the relay %.1f MB/s; small page, wrk -c16: %s req/s\n' \
		"$2" "$(echo "$m / 1000000" | bc -l)" "${rps:-?}"
}

# commit_200 STATE MNT: seconds from cp into MNT/commit/ to the first 200
commit_200() {
	local t0
	t0=$(now)
	cp "$2/deltas/$id.fedsnap" "$2/commit/web.fedsnap"
	first_200 "$1" web.fedsnap "$t0"
}

# One peer per run and mode, jailed (the default) and --no-jail, taken in
# turn so that both see the same machine state.
declare -A cold warm
n=0
for ((i = 1; i <= RUNS; i++)); do
	for mode in jail nojail; do
		n=$((n + 1))
		start_fedfs "p$n" "127.0.0.$((n + 1))" "$d"
		mnt_var=MNT_p$n key_var=KEY_p$n
		mnt=${!mnt_var} key=${!key_var}
		wait_for 30 test -e "$mnt/deltas/$id.fedsnap" ||
			{ echo "bench/vmrunner.sh: peer p$n's fedfs did not come up"; exit 1; }
		extra=()
		[ $mode = nojail ] && extra=(--no-jail)
		"$BINDIR/fed-vmrunner" --fed "$mnt" --state "$d/vmr$n" \
			--authority "$AUTH" --key "$key" --public-addr 127.0.0.2 -f \
			"${extra[@]}" >>"$d/vmr$n.log" 2>&1 &
		pid=$!
		on_exit "kill $pid; kill_jails '$d/vmr$n'"
		wait_for 10 test -e "$d/vmr$n/status.json"
		t=$(commit_200 "$d/vmr$n" "$mnt") || { echo "cold run $i ($mode): no 200"; exit 1; }
		cold[$mode]+="$t "
		# warm: withdraw, wait until released, commit again
		rm "$mnt/commit/web.fedsnap"
		wait_for 20 sh -c "! jq -e '.vms[0]' '$d/vmr$n/status.json' >/dev/null"
		t2=$(commit_200 "$d/vmr$n" "$mnt") || { echo "warm run $i ($mode): no 200"; exit 1; }
		warm[$mode]+="$t2 "
		printf 'run %d, %-6s: cold %.2f s, warm %.2f s\n' "$i" "$mode" "$t" "$t2"
		if [ "$i" = "$RUNS" ]; then
			[ $mode = jail ] && echo "relay into the VM's network namespace, same run:"
			relay_figures "$d/vmr$n" "$mode"
			if [ $mode = jail ]; then	# the jailed VM's host memory
				cg=$(ls -d /sys/fs/cgroup/memory/fed/"$(jail_hash "$d/vmr$n")"/* 2>/dev/null | head -n 1)
				peak=$(cat "$cg/memory.max_usage_in_bytes" 2>/dev/null || echo 0)
				printf '  jailed VM (mem=64M): host memory peak %d MiB (cgroup), limit %d MiB\n' \
					$((peak >> 20)) $(( $(cat "$cg/memory.limit_in_bytes" 2>/dev/null || echo 0) >> 20 ))
			fi
		fi
		kill "$pid"
		wait_for 20 sh -c "! kill -0 $pid 2>/dev/null"
	done
done
med() { tr ' ' '\n' <<<"$1" | sed '/^$/d' | median; }
printf 'jail cost, cp commit/ -> first HTTP 200, median of %d:\n' "$RUNS"
printf '  jailed:   cold %.2f s, warm %.2f s\n' "$(med "${cold[jail]}")" "$(med "${warm[jail]}")"
printf '  no jail:  cold %.2f s, warm %.2f s\n' "$(med "${cold[nojail]}")" "$(med "${warm[nojail]}")"
printf '  warm jailed / warm unjailed: %.2fx (goal: <= 1.10)\n' \
	"$(echo "$(med "${warm[jail]}") / $(med "${warm[nojail]}")" | bc -l)"
echo "vmrunner's own view (exec -> guest port accepts; check + unpack + namespace before it):"
grep -h -o '[0-9.]* s after the commit (check and unpack .*)' "$d"/vmr*.log | sed 's/^/  /'
printf 'UML alone (local base, boot to power-off), median of %d: %.2f s\n' \
	"$RUNS" "$(printf '%s\n' "${base_runs[@]}" | median)"


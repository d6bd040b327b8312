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

cold=()
warm=()
for ((i = 1; i <= RUNS; i++)); do
	start_fedfs "p$i" "127.0.0.$((i + 1))" "$d"
	mnt_var=MNT_p$i key_var=KEY_p$i
	mnt=${!mnt_var} key=${!key_var}
	wait_for 30 test -e "$mnt/deltas/$id.fedsnap" ||
		{ echo "bench/vmrunner.sh: peer p$i's fedfs did not come up"; exit 1; }
	"$BINDIR/fed-vmrunner" --fed "$mnt" --state "$d/vmr$i" \
		--authority "$AUTH" --key "$key" --public-addr 127.0.0.2 -f \
		>>"$d/vmr$i.log" 2>&1 &
	pid=$!
	on_exit "kill $pid"
	wait_for 10 test -e "$d/vmr$i/status.json"
	t0=$(now)
	cp "$mnt/deltas/$id.fedsnap" "$mnt/commit/web.fedsnap"
	t=$(first_200 "$d/vmr$i" web.fedsnap "$t0") || { echo "cold run $i: no 200"; exit 1; }
	cold+=("$t")
	printf 'cold run %d: %.2f s\n' "$i" "$t"
	# warm: withdraw, wait until released, commit again
	rm "$mnt/commit/web.fedsnap"
	wait_for 20 sh -c "! jq -e '.vms[0]' '$d/vmr$i/status.json' >/dev/null"
	t0=$(now)
	cp "$mnt/deltas/$id.fedsnap" "$mnt/commit/web.fedsnap"
	t=$(first_200 "$d/vmr$i" web.fedsnap "$t0") || { echo "warm run $i: no 200"; exit 1; }
	warm+=("$t")
	printf 'warm run %d: %.2f s\n' "$i" "$t"
	if [ "$i" = "$RUNS" ]; then	# the relay vs the VM's own address
		hp=$(jq -r '.vms[0].host_port' "$d/vmr$i/status.json")
		va=$(jq -r '.vms[0].address' "$d/vmr$i/status.json")
		va=${va%%/*}
		relay_mbs=() direct_mbs=() relay_rps="" direct_rps=""
		for k in 1 2 3; do
			relay_mbs+=("$(curl -s -o /dev/null -w '%{speed_download}' "http://127.0.0.1:$hp/big.bin")")
			direct_mbs+=("$(curl -s -o /dev/null -w '%{speed_download}' "http://$va:80/big.bin")")
		done
		if command -v wrk >/dev/null; then
			relay_rps=$(wrk -t1 -c16 -d3s "http://127.0.0.1:$hp/" 2>/dev/null | awk '/Requests\/sec/ {print $2}')
			direct_rps=$(wrk -t1 -c16 -d3s "http://$va:80/" 2>/dev/null | awk '/Requests\/sec/ {print $2}')
		fi
		rm_=$(printf '%s\n' "${relay_mbs[@]}" | median)
		dm_=$(printf '%s\n' "${direct_mbs[@]}" | median)
		printf 'through the relay vs straight to the VM (%s), same run:\n' "$va"
		printf '  8 MiB download: relay %.1f MB/s, direct %.1f MB/s (%.2fx)\n' \
			"$(echo "$rm_ / 1000000" | bc -l)" "$(echo "$dm_ / 1000000" | bc -l)" \
			"$(echo "$rm_ / $dm_" | bc -l)"
		[ -n "$relay_rps" ] && printf '  small page, wrk -c16: relay %s req/s, direct %s req/s\n' \
			"$relay_rps" "$direct_rps"
	fi
	kill "$pid"
	wait_for 20 sh -c "! kill -0 $pid 2>/dev/null"
done
echo "vmrunner's own view (exec -> guest port accepts; check + unpack + tap before it):"
grep -h -o '[0-9.]* s after the commit (check and unpack .*)' "$d"/vmr*.log | sed 's/^/  /'
printf 'UML alone (local base, boot to power-off), median of %d: %.2f s\n' \
	"$RUNS" "$(printf '%s\n' "${base_runs[@]}" | median)"
printf 'vmrunner: cp commit/ -> first HTTP 200 via the host port, median of %d: cold %.2f s, warm %.2f s (goal: warm < 3 s)\n' \
	"$RUNS" "$(printf '%s\n' "${cold[@]}" | median)" \
	"$(printf '%s\n' "${warm[@]}" | median)"

#!/usr/bin/env bash
# Running-state snapshots end to end: real QEMU (TCG) machines resumed from
# their saved memory, inside a network namespace this test makes (and
# removes, with everything in it, however the test ends).
#
# An owner makes a running-state snapshot of a busybox httpd whose page
# holds a token drawn when the service started (`fed snapshot create
# --running`); a peer commits it through fedfs and its vmrunner resumes it:
# the page has the *same* token (resumed, not restarted: the console shows
# no boot).  The same saved machine under a second service name runs beside
# it on its own host port (both guests have the same private address, each
# in its own namespace).  Killing QEMU resumes it again from the snapshot.
# A QEMU command-line mismatch (re-signed by the owner) is refused through
# fedfs; a tampered memory-state chunk, an untrusted QEMU kernel and a
# snapshot from another QEMU version are refused by a second vmrunner on a
# plain directory; each with one clear line, nothing run.  Withdrawing and SIGTERM leave no namespace behind.
source "$(dirname "$0")/lib.sh"

need_uml
RESIGN=$ROOT/${BUILD:-build}/tests/tools/fedsnap_resign
# QEMU machines' namespaces are named after their lease (fed + 8 hex of
# the address): this test's lease range makes them fed0a4e....
LEASES=10.78.0.0/16
NSPREFIX=fed0a4e

# --- outside: make the namespace, run this script inside it, clean up ----
if [ -z "${FED_QEMU_NS:-}" ]; then
	if [ "$(id -u)" != 0 ] || [ ! -e /dev/net/tun ] ||
		! command -v qemu-system-x86_64 >/dev/null; then
		echo "ok - # SKIP needs root, qemu-system-x86_64 and /dev/net/tun"
		exit 0
	fi
	ns=fedqemu$$
	ip netns add "$ns" || { not_ok "ip netns add $ns"; exit 1; }
	on_exit "ip netns del $ns"
	on_exit "for p in \$(ip netns pids $ns); do kill -9 \$p; done; sleep 0.2"
	# the machines' own namespaces, should a vmrunner have left any
	on_exit "for n in \$(ip netns list | awk '{print \$1}' | grep '^fed[0-9a-f]*-$NSPREFIX'); do
		for p in \$(ip netns pids \$n); do kill -9 \$p; done; ip netns del \$n; done"
	ip netns exec "$ns" ip link set lo up
	FED_QEMU_NS=$ns nsenter --net="/run/netns/$ns" bash "$0"
	rc=$?
	check "nothing is left running in the test's namespace" \
		wait_for 10 sh -c "test \$(ip netns pids $ns | wc -l) = 0"
	check "no machine namespace is left" \
		sh -c "! ip netns list | grep -q '^fed[0-9a-f]*-$NSPREFIX'"
	exit $rc
fi

# --- inside the namespace --------------------------------------------------
mktempdir d
http() { curl -fsS --max-time 3 "http://127.0.0.1:$1/"; }
vm() { jq -r "$2" "$1/status.json" 2>/dev/null; }
vm_field() { vm "$1" ".vms[] | select(.file==\"$2\") | .$3"; }
is_up() { [ "$(vm_field "$1" "$2" state)" = up ]; }
start_vmrunner() {	# start_vmrunner STATE LOG MNT KEY
	"$BINDIR/fed-vmrunner" --fed "$3" --state "$1" --authority "$AUTH" \
		--key "$4" --public-addr 127.0.0.2 --lease-range "$LEASES" -f \
		>>"$2" 2>&1 &
	VMR_PID=$!
	disown "$VMR_PID"
	on_exit "kill_jails '$1'"
	on_exit "kill $VMR_PID; sleep 1; kill -9 $VMR_PID"
}
machine_ns() { ip netns list | awk '{print $1}' | grep "^fed[0-9a-f]*-$NSPREFIX" | sort; }

qemu_kernel_object qk || { not_ok "the QEMU kernel object is built"; exit 1; }
bash "$ROOT/scripts/mkbase.sh" "$d/base.img" >/dev/null
cp "$qk" "$d/qkernel"
"$FED" keygen -o "$d/owner.key" >/dev/null
mkdir -p "$d/web/var/www"
# the token is drawn when the service starts, printed on the console (so
# the owner's create log has it) and served
run='t=$(cat /proc/sys/kernel/random/uuid); echo "fed-token $t"; echo "token $t" >/var/www/index.html; httpd -f -p 80 -h /var/www'

quietly() { "$@" >/dev/null; }
check "fed snapshot create --running makes a running-state snapshot" \
	quietly "$FED" snapshot create --running --kernel "$d/qkernel" \
	--uml-kernel "$UML" --base "$d/base.img" --files "$d/web" --run "$run" \
	--service www.example.org:80 --guest-port 80 --key "$d/owner.key" \
	-o "$d/web.fedsnap" --version 1 --timeout 240 --keep-log "$d/create.log"
token=$(grep -ao 'fed-token [0-9a-f-]*' "$d/create.log" | head -n 1 | cut -d' ' -f2)
check "the owner's machine drew its token before it was saved" test -n "$token"
check "the snapshot verifies" quietly "$FED" snapshot verify "$d/web.fedsnap"
inspect() { "$FED" snapshot inspect "$d/web.fedsnap" --json; }
check "its signed manifest records machine, QEMU version, machine type, memory and command line" \
	sh -c "'$FED' snapshot inspect '$d/web.fedsnap' --json | jq -e '.manifest |
		.machine == \"qemu\" and .delta.format == \"fedqemu2+zlib\" and
		(.qemu.version | test(\"^[0-9]+[.][0-9]+[.][0-9]+$\")) and
		(.qemu.machine | startswith(\"pc-q35-\")) and .qemu.mem_mb == 128 and
		(.qemu.args | index(\"-kernel\")) != null and .qemu.state_size > 0' >/dev/null"

# the same saved machine under a second name; and one with another
# command line, both signed by the owner
inspect | jq '.manifest | .service.host = "www2.example.org" | .name = "www2"' |
	"$RESIGN" "$d/web.fedsnap" "$d/web2.fedsnap" "$d/owner.key"
inspect | jq '.manifest | .service.host = "bad.example.org" | .name = "bad" |
	.qemu.args[(.qemu.args | index("-smp")) + 1] = "2"' |
	"$RESIGN" "$d/web.fedsnap" "$d/badargs.fedsnap" "$d/owner.key"
check "the owner re-signs the same machine as a second service, and one with -smp 2" \
	sh -c "'$FED' snapshot verify '$d/web2.fedsnap' >/dev/null &&
		'$FED' snapshot verify '$d/badargs.fedsnap' >/dev/null"

start_authority "$d/auth" --publish-allowance 10 || { not_ok "the authority starts"; exit 1; }
"$FED" trust add "$d/base.img" --kind base --authority "$AUTH" --key "$ADMIN_KEY" >/dev/null
check "the admin trusts the QEMU kernel object like any kernel" \
	quietly "$FED" trust add "$d/qkernel" --kind kernel --authority "$AUTH" --key "$ADMIN_KEY"
start_fedfs owner 127.0.0.1 "$d"
for f in base.img qkernel web.fedsnap web2.fedsnap badargs.fedsnap; do
	cp "$d/$f" "$MNT_owner/publish/" || not_ok "the owner publishes $f"
done
start_fedfs peer 127.0.0.2 "$d"
id_of() { "$FED" snapshot inspect "$d/$1" --json | jq -r .id; }
web_id=$(id_of web.fedsnap)
web2_id=$(id_of web2.fedsnap)
bad_id=$(id_of badargs.fedsnap)
check "the peer's fedfs sees the published snapshots" \
	wait_for 30 test -e "$MNT_peer/deltas/$bad_id.fedsnap"

mkdir -p "$d/vmr"
start_vmrunner "$d/vmr" "$d/vmr.log" "$MNT_peer" "$KEY_peer"
vmr1=$VMR_PID
t0=$(date +%s.%N)
cp "$MNT_peer/deltas/$web_id.fedsnap" "$MNT_peer/commit/web.fedsnap"
check "the peer commits it and the vmrunner resumes it" wait_for 120 is_up "$d/vmr" web.fedsnap
port=$(vm_field "$d/vmr" web.fedsnap host_port)
echo "# commit to up: $(echo "$(date +%s.%N) - $t0" | bc) s; $(grep -a 'web.fedsnap: resumed' "$d/vmr.log" | tail -n 1 | sed 's/.*resumed/resumed/')"
check "the page comes back with the token drawn on the owner's machine: resumed, not restarted" \
	test "$(http "$port")" = "token $token"
vmdir=$d/vmr/vms/$web_id
check "the peer's console shows no boot and no service start" \
	sh -c "! grep -aq -e 'fed-init: service started' -e 'Linux version' '$vmdir/console.log'"
check "status.json says machine qemu at the saved guest address" \
	test "$(vm_field "$d/vmr" web.fedsnap machine) $(vm_field "$d/vmr" web.fedsnap address)" = "qemu 10.255.255.2"
check "fed status shows it as a qemu machine" \
	sh -c "'$FED' status --state '$d/vmr' | grep -q 'www.example.org:80 .* $port up .* qemu\$'"
check "the authority lists it at the host port" \
	test "$(curl -fsS "$AUTH/v1/lookup?host=www.example.org&port=80" | jq -r '.peers[0].port')" = "$port"

cp "$MNT_peer/deltas/$web2_id.fedsnap" "$MNT_peer/commit/web2.fedsnap"
check "a second copy of the machine is resumed beside it" wait_for 120 is_up "$d/vmr" web2.fedsnap
port2=$(vm_field "$d/vmr" web2.fedsnap host_port)
check "each on its own host port" test "$port" != "$port2"
check "both answer, each with the saved token, from the same private address" \
	sh -c "test \"\$(curl -fsS --max-time 3 http://127.0.0.1:$port/)\" = 'token $token' &&
		test \"\$(curl -fsS --max-time 3 http://127.0.0.1:$port2/)\" = 'token $token'"
check "in two namespaces" test "$(machine_ns | wc -l)" = 2

# the kernel QEMU boots is split out of the cached object again before
# each boot: a split file changed meanwhile is not what boots next
vmlinuz=$(ls "$d"/vmr/kernels/*.vmlinuz | head -n 1)
good_vmlinuz=$(sha256sum <"$vmlinuz")
printf 'not a kernel' >"$vmlinuz"
pid=$(vm_field "$d/vmr" web.fedsnap pid)
# (a pid of 0 would be this test's own process group)
[ "${pid:-0}" -gt 1 ] && kill -9 "$pid"
back() { is_up "$d/vmr" web.fedsnap && [ "$(vm_field "$d/vmr" web.fedsnap restarts)" = 1 ]; }
check "a killed QEMU is resumed again from the snapshot" wait_for 120 back
check "with the same token, on the same host port" \
	test "$(http "$port")" = "token $token"
check "the kill was logged with what happened" \
	grep -aq "web.fedsnap: QEMU killed by signal 9; restarting" "$d/vmr.log"
check "and it booted the trusted kernel, split afresh, not the changed file" \
	test "$(sha256sum <"$vmlinuz")" = "$good_vmlinuz"

cp "$MNT_peer/deltas/$bad_id.fedsnap" "$MNT_peer/commit/badargs.fedsnap"
check "a QEMU command-line mismatch is refused with a line saying which argument" \
	wait_for 30 grep -aq "refusing badargs.fedsnap: QEMU command line differs from the recorded one at argument [0-9]*: recorded '2', this peer runs '1'" "$d/vmr.log"
check "and nothing of it runs" \
	sh -c "test -z \"\$(jq -r '.vms[] | select(.file==\"badargs.fedsnap\") | .file' '$d/vmr/status.json')\" && test \$(ls '$d/vmr/vms' | wc -l) = 2"

# a second vmrunner on a plain directory laid out like a fedfs mount: what
# fedfs itself would refuse to take into commit/
fake=$d/fake
mkdir -p "$fake/commit" "$fake/kernels" "$fake/bases"
cp "$d/web.fedsnap" "$fake/commit/tampered.fedsnap"
nchunks=$(inspect | jq '.manifest.delta.chunks | length')
csize=$(inspect | jq '.manifest.delta.chunk_size')
size=$(stat -c %s "$d/web.fedsnap")
payload_off=$((size - $(inspect | jq '.manifest.delta.size')))
flip_byte "$fake/commit/tampered.fedsnap" $((payload_off + (nchunks - 1) * csize + 7))
head -c 1000 /dev/urandom >"$d/otherkernel"
inspect | jq --arg k "$(sha256sum <"$d/otherkernel" | cut -c1-64)" \
	'.manifest | .kernel = $k | .service.host = "untrusted.example.org" | .name = "untrusted"' |
	"$RESIGN" "$d/web.fedsnap" "$fake/commit/untrusted-kernel.fedsnap" "$d/owner.key"
inspect | jq '.manifest | .qemu.version = "7.1.0" | .service.host = "old.example.org" | .name = "old"' |
	"$RESIGN" "$d/web.fedsnap" "$fake/commit/oldqemu.fedsnap" "$d/owner.key"
chmod 0444 "$fake/commit/"*
mkdir -p "$d/vmr2"
start_vmrunner "$d/vmr2" "$d/vmr2.log" "$fake" "$KEY_peer"
vmr2=$VMR_PID
check "a tampered memory-state chunk is refused, naming the chunk" \
	wait_for 30 grep -aq "refusing tampered.fedsnap: .*chunk $((nchunks - 1)) (.*): hash mismatch (payload of disk delta and memory state)" "$d/vmr2.log"
check "an untrusted QEMU kernel is refused" \
	wait_for 30 grep -aq "refusing untrusted-kernel.fedsnap: kernel [0-9a-f]\{8\}\.\. is not trusted" "$d/vmr2.log"
check "a snapshot saved by another QEMU version is refused, saying both versions" \
	wait_for 30 grep -aq "refusing oldqemu.fedsnap: QEMU version differs: the snapshot was saved by QEMU 7.1.0, this peer runs [0-9.]*$" "$d/vmr2.log"
check "the second vmrunner runs nothing" \
	sh -c "test \"\$(jq '.vms | length' '$d/vmr2/status.json')\" = 0 && test \$(machine_ns_n=\$(ip netns list | grep -c '^fed[0-9a-f]*-$NSPREFIX'); echo \$machine_ns_n) = 2"
kill "$vmr2"

rm "$MNT_peer/commit/web2.fedsnap"
gone() { [ -z "$(vm_field "$d/vmr" web2.fedsnap state)" ] && ! http "$port2" >/dev/null 2>&1; }
check "withdrawing closes its port" wait_for 30 gone
check "and removes its namespace and QEMU, keeping only the unpacked disk and memory" \
	sh -c "test \$(ip netns list | grep -c '^fed[0-9a-f]*-$NSPREFIX') = 1 &&
		test \"\$(ls '$d/vmr/vms/$web2_id' | tr '\n' ' ')\" = 'console.log disk.raw ram.img state.bin unpacked '"
cp "$MNT_peer/deltas/$web2_id.fedsnap" "$MNT_peer/commit/web2.fedsnap"
check "committed again, it is resumed from the kept copy, not unpacked again" \
	wait_for 60 grep -aq "web2.fedsnap: disk and memory state unpacked by an earlier commit" "$d/vmr.log"
check "and answers with the saved token" \
	wait_for 60 sh -c "p=\$(jq -r '.vms[] | select(.file==\"web2.fedsnap\" and .state==\"up\") | .host_port' '$d/vmr/status.json'); test \"\$(curl -fsS --max-time 3 http://127.0.0.1:\$p/ 2>/dev/null)\" = 'token $token'"
kill "$vmr1"
stopped() { ! kill -0 "$vmr1" 2>/dev/null; }
check "SIGTERM stops the vmrunner" wait_for 30 stopped
left() {
	ip netns list | grep "^fed[0-9a-f]*-$NSPREFIX"
	pgrep -af "qemu-system-x86_64 .*(file=/vm/disk.raw|$d/vmr/vms)"
}
if [ -z "$(left)" ]; then
	ok "and leaves no machine namespace and no QEMU"
else
	left | sed 's/^/# left: /' | cut -c1-160
	not_ok "and leaves no machine namespace and no QEMU"
fi

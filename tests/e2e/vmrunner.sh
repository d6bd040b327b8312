#!/usr/bin/env bash
# fed-vmrunner end to end, with real UML machines on real taps, inside a
# network namespace this test makes (and removes, with everything in it,
# however the test ends).
#
# An owner makes two busybox httpd snapshots with `fed snapshot create` and
# publishes them with the base and the kernel; a peer commits them (cp into
# commit/) and its vmrunner boots them: each answers through its own host
# port from its own private address (Figure 1 of the paper: both on guest
# port 80).  Killing a UML brings it back by itself, and the authority saw
# it down then up.  Withdrawing closes the port and frees tap, lease and
# UML.  A vmrunner killed -9 and restarted leaves nothing behind; a newer
# version takes over the same host port; SIGTERM releases everything.
# `fed snapshot create` with a kernel that does not import fails cleanly.  A second vmrunner, on a plain directory laid out
# like a fedfs mount, refuses a bad signature, an untrusted base, a
# revoked kernel and a service name too long for the relay with one clear
# line each, and boots nothing; then a VM of it that answers but finds its
# one host port taken stays starting and tries again seconds later, an
# older version of its service is not booted, and a file it cannot stat is
# not taken for a withdrawal.
source "$(dirname "$0")/lib.sh"

need_uml

# --- outside: make the namespace, run this script inside it, clean up ----
if [ -z "${FED_VMRUNNER_NS:-}" ]; then
	if [ "$(id -u)" != 0 ] || [ ! -e /dev/net/tun ]; then
		echo "ok - # SKIP needs root and /dev/net/tun"
		exit 0
	fi
	ns=fedvm$$
	ip netns add "$ns" || { not_ok "ip netns add $ns"; exit 1; }
	# every process left in the namespace (UMLs included), then the
	# namespace with its taps
	on_exit "ip netns del $ns"
	on_exit "for p in \$(ip netns pids $ns); do kill -9 \$p; done; sleep 0.2"
	ip netns exec "$ns" ip link set lo up
	# nsenter --net keeps our mount namespace: the FUSE mounts made
	# inside are visible (and unmounted by the inner script's cleanups)
	FED_VMRUNNER_NS=$ns nsenter --net="/run/netns/$ns" bash "$0"
	rc=$?
	check "nothing is left running in the namespace" \
		wait_for 10 sh -c "test \$(ip netns pids $ns | wc -l) = 0"
	exit $rc
fi

# --- inside the namespace --------------------------------------------------
mktempdir d
ns=$FED_VMRUNNER_NS

# http PORT: the page served at 127.0.0.1:PORT (fails if none)
http() { curl -fsS --max-time 3 "http://127.0.0.1:$1/"; }
# vm JQ: a value from the peer vmrunner's status.json
vm() { jq -r "$1" "$d/vmr/status.json" 2>/dev/null; }
vm_state() { vm ".vms[] | select(.file==\"$1\") | .state"; }
is_up() { [ "$(vm_state "$1")" = up ]; }
auth_up() {	# auth_up SERVICE PEERKEY -> "true" iff any of its commitments is up
	curl -fsS "$AUTH/v1/services/$1/peers" |
		jq -r "[.peers[] | select(.peer==\"$2\") | .up] | any" 2>/dev/null
}
auth_is() { [ "$(auth_up "$1" "$2")" = "$3" ]; }	# polled: re-asks each time
# netns_prefix STATE: the names of the machine namespaces the vmrunner with
# state dir STATE makes start with it ("fed" + 8 hex of STATE's path + "-")
netns_prefix() { echo "fed$(printf %s "$(realpath "$1")" | sha256sum | cut -c1-8)-"; }
machine_namespaces() { ip netns list | grep -c "^$(netns_prefix "$1")"; }
start_vmrunner() {	# start_vmrunner STATE LOG MNT KEY [options]
	local state=$1 log=$2 mnt=$3 key=$4
	shift 4
	"$BINDIR/fed-vmrunner" --fed "$mnt" --state "$state" --authority "$AUTH" \
		--key "$key" --public-addr 127.0.0.2 --mem 48 --no-follow -f "$@" \
		>>"$log" 2>&1 &
	VMR_PID=$!
	disown "$VMR_PID"
	on_exit "kill_jails '$state'"
	on_exit "kill $VMR_PID; sleep 1; kill -9 $VMR_PID"
}

bash "$ROOT/scripts/mkbase.sh" "$d/base.img" >/dev/null
cp "$UML" "$d/kernel"
"$FED" keygen -o "$d/owner.key" >/dev/null
mkdir -p "$d/web/var/www" "$d/blog/var/www"
echo "web page $RANDOM$RANDOM" >"$d/web/var/www/index.html"
echo "blog page $RANDOM$RANDOM" >"$d/blog/var/www/index.html"

check "fed snapshot create makes the web snapshot" \
	"$FED" snapshot create --kernel "$d/kernel" --base "$d/base.img" \
	--files "$d/web" --run 'httpd -f -p 80 -h /var/www' \
	--service www.example.org:80 --guest-port 80 --key "$d/owner.key" \
	-o "$d/web.fedsnap" --version 1
check "fed snapshot create makes the blog snapshot (--json)" \
	sh -c "'$FED' snapshot create --kernel '$d/kernel' --base '$d/base.img' \
	--files '$d/blog' --run 'httpd -f -p 80 -h /var/www' \
	--service blog.example.org:80 --guest-port 80 --key '$d/owner.key' \
	-o '$d/blog.fedsnap' --version 1 --json | jq -e .id >/dev/null"
check "the snapshot verifies" "$FED" snapshot verify "$d/web.fedsnap"
mkdir -p "$d/tmp"
err=$(TMPDIR=$d/tmp "$FED" snapshot create --kernel /bin/true --base "$d/base.img" \
	--files "$d/web" --run 'true' --service bad.example.org:80 --guest-port 80 \
	--key "$d/owner.key" -o "$d/bad.fedsnap" 2>&1)
one_clear_line() {
	[ "$(printf '%s\n' "$err" | wc -l)" = 1 ] &&
		grep -q "did not say 'fed-init: imported'" <<<"$err"
}
no_leftovers() { [ ! -e "$d/bad.fedsnap" ] && [ -z "$(ls -A "$d/tmp")" ]; }
check "a boot that does not import fails with one clear line" one_clear_line
check "and leaves neither a snapshot nor a temporary directory" no_leftovers
mkdir -p "$d/web2/var/www"
echo "web page version 2 $RANDOM$RANDOM" >"$d/web2/var/www/index.html"
"$FED" snapshot create --kernel "$d/kernel" --base "$d/base.img" \
	--files "$d/web2" --run 'httpd -f -p 80 -h /var/www' \
	--service www.example.org:80 --guest-port 80 --key "$d/owner.key" \
	-o "$d/web2.fedsnap" --version 2 >/dev/null

# a short peer ttl: peers that do not refresh leave sources and lookups
start_authority "$d/auth" --publish-allowance 10 --peer-ttl 6 || { not_ok "the authority starts"; exit 1; }
"$FED" trust add "$d/base.img" --kind base --authority "$AUTH" --key "$ADMIN_KEY" >/dev/null
"$FED" trust add "$d/kernel" --kind kernel --authority "$AUTH" --key "$ADMIN_KEY" >/dev/null
start_fedfs owner 127.0.0.1 "$d"
for f in base.img kernel web.fedsnap blog.fedsnap; do
	cp "$d/$f" "$MNT_owner/publish/" || not_ok "the owner publishes $f"
done
start_fedfs peer 127.0.0.2 "$d"
peer_pub=$("$FED" pubkey "$KEY_peer")
web_id=$("$FED" snapshot inspect "$d/web.fedsnap" --json | jq -r .id)
blog_id=$("$FED" snapshot inspect "$d/blog.fedsnap" --json | jq -r .id)
check "the peer's fedfs sees the published snapshots" \
	wait_for 30 test -e "$MNT_peer/deltas/$blog_id.fedsnap"

mkdir -p "$d/vmr"
start_vmrunner "$d/vmr" "$d/vmr.log" "$MNT_peer" "$KEY_peer"
vmr1=$VMR_PID
check "the peer commits the web snapshot" \
	cp "$MNT_peer/deltas/$web_id.fedsnap" "$MNT_peer/commit/web.fedsnap"
check "the vmrunner boots it and reports it up" wait_for 60 is_up web.fedsnap
web_port=$(vm '.vms[] | select(.file=="web.fedsnap") | .host_port')
web_addr=$(vm '.vms[] | select(.file=="web.fedsnap") | .address')
check "the host port returns the page" \
	test "$(http "$web_port")" = "$(cat "$d/web/var/www/index.html")"
check "the authority has it up at the public address and host port" \
	test "$(curl -fsS "$AUTH/v1/lookup?host=www.example.org&port=80" |
		jq -r '.peers[0] | "\(.addr):\(.port)"')" = "127.0.0.2:$web_port"
check "the console is logged" grep -q 'fed-init: service started' \
	"$d/vmr/vms/$web_id/console.log"
check "fed status shows it up" \
	sh -c "'$FED' status --state '$d/vmr' | grep -q 'www.example.org:80 .* $web_port up'"
check "fed status --json has snapshot, version, address" \
	test "$("$FED" status --state "$d/vmr" --json |
		jq -r '.vms[0] | "\(.snapshot) \(.version) \(.address)"')" = "$web_id 1 $web_addr"

# liveness: with --peer-ttl 6, the vmrunner reports the commitment up again
# and fedfs registers the peer again at a third of it, so both outlive it
commit_updated() {
	curl -fsS "$AUTH/v1/services/www.example.org:80/peers" | jq -r --arg p "$peer_pub" \
		'[.peers[] | select(.peer == $p and .up) | .updated | fromdateiso8601] | max // 0'
}
peer_updated() { curl -fsS "$AUTH/v1/peers/$peer_pub" | jq -r '.updated | fromdateiso8601'; }
at_least() { [ "$($1)" -ge "$2" ]; }	# at_least FUNCTION SECONDS
t_commit=$(commit_updated) t_peer=$(peer_updated)
check "the vmrunner reports the commitment up again, past the peer ttl" \
	wait_for 20 at_least commit_updated $((t_commit + 7))
check "fedfs registers the peer again meanwhile" \
	wait_for 10 at_least peer_updated $((t_peer + 7))
check "and the lookup still lists it" \
	test "$(curl -fsS "$AUTH/v1/lookup?host=www.example.org&port=80" | jq -r '.peers[0].peer')" = "$peer_pub"
check "the refreshes are not logged as events" \
	test "$(grep -c 'web.fedsnap: reported up' "$d/vmr.log")" = 1

# Figure 1: two services on guest port 80 side by side
cp "$MNT_peer/deltas/$blog_id.fedsnap" "$MNT_peer/commit/blog.fedsnap"
check "a second service boots beside the first" wait_for 60 is_up blog.fedsnap
blog_port=$(vm '.vms[] | select(.file=="blog.fedsnap") | .host_port')
blog_addr=$(vm '.vms[] | select(.file=="blog.fedsnap") | .address')
echo "# web $web_addr via $web_port, blog $blog_addr via $blog_port"
check "the two have different private addresses" test "$web_addr" != "$blog_addr"
check "and different host ports" test "$web_port" != "$blog_port"
check "each host port returns its own page (web)" \
	test "$(http "$web_port")" = "$(cat "$d/web/var/www/index.html")"
check "each host port returns its own page (blog)" \
	test "$(http "$blog_port")" = "$(cat "$d/blog/var/www/index.html")"

# a UML that dies comes back by itself; the authority sees down, then up
pid=$(vm '.vms[] | select(.file=="web.fedsnap") | .pid')
kill -9 "$pid"
check "the authority sees the service down" \
	wait_for 20 auth_is www.example.org:80 "$peer_pub" false
check "the vmrunner restarts it" wait_for 60 is_up web.fedsnap
check "and the authority sees it up again" \
	wait_for 10 auth_is www.example.org:80 "$peer_pub" true
check "it counts one restart" \
	test "$(vm '.vms[] | select(.file=="web.fedsnap") | .restarts')" = 1
check "the same host port serves the page again" \
	test "$(http "$web_port")" = "$(cat "$d/web/var/www/index.html")"

# withdraw: port, tap, lease and UML all gone
blog_pid=$(vm '.vms[] | select(.file=="blog.fedsnap") | .pid')
blog_tap=$(vm '.vms[] | select(.file=="blog.fedsnap") | .tap')
check "rm commit/ withdraws" rm "$MNT_peer/commit/blog.fedsnap"
check "the vmrunner forgets it" \
	wait_for 15 sh -c "! jq -e '.vms[] | select(.file==\"blog.fedsnap\")' '$d/vmr/status.json' >/dev/null"
check "its host port is closed" sh -c "! curl -fsS --max-time 2 http://127.0.0.1:$blog_port/ >/dev/null 2>&1"
check "its tap is gone" sh -c "! ip link show '$blog_tap' >/dev/null 2>&1"
check "its lease is free" sh -c "! grep -q '$blog_id' '$d/vmr/leases.json'"
check "its UML is gone" gone "$blog_pid"
check "the other service still serves" \
	test "$(http "$web_port")" = "$(cat "$d/web/var/www/index.html")"

# a vmrunner killed -9 and started again: no leaked UML, tap or port
old_pid=$(vm '.vms[] | select(.file=="web.fedsnap") | .pid')
kill -9 "$vmr1"
# as a supervisor would: start again once the old one has exited (kill
# returns before it has, and its lock on the state dir lasts until then)
wait_for 10 gone "$vmr1"
start_vmrunner "$d/vmr" "$d/vmr.log" "$MNT_peer" "$KEY_peer"
vmr2=$VMR_PID
check "after a crash and restart the old UML is killed" \
	wait_for 15 gone "$old_pid"
wait_for 60 sh -c "jq -e '.vms[] | select(.file==\"web.fedsnap\" and .state==\"up\" and .pid != $old_pid)' '$d/vmr/status.json' >/dev/null"
check "the service is up again after the restart" is_up web.fedsnap
web_port=$(vm '.vms[] | select(.file=="web.fedsnap") | .host_port')
check "and serves the page" \
	test "$(http "$web_port")" = "$(cat "$d/web/var/www/index.html")"
check "one machine namespace after the restart" \
	test "$(machine_namespaces "$d/vmr")" = 1

# refusals, by a second vmrunner over a plain directory laid out like the
# mount (fedfs itself refuses these in commit/, so the vmrunner's own
# checks are tested here)
fake=$d/fake
mkdir -p "$fake/commit"
ln -s "$MNT_peer/kernels" "$fake/kernels"
ln -s "$MNT_peer/bases" "$fake/bases"
cp "$d/web.fedsnap" "$fake/commit/badsig.fedsnap"
off=$(grep -boa 'www.example.org' "$fake/commit/badsig.fedsnap" | head -n 1 | cut -d: -f1)
printf x | dd of="$fake/commit/badsig.fedsnap" bs=1 seek=$((off + 2)) conv=notrunc 2>/dev/null
cp "$d/base.img" "$d/base2.img"
printf '\001' | dd of="$d/base2.img" bs=1 seek=$(($(stat -c %s "$d/base.img") - 1)) conv=notrunc 2>/dev/null
"$FED" snapshot create --kernel "$d/kernel" --base "$d/base2.img" \
	--files "$d/web" --run 'httpd -f -p 80 -h /var/www' \
	--service other.example.org:80 --guest-port 80 --key "$d/owner.key" \
	-o "$fake/commit/untrusted-base.fedsnap" --version 1 >/dev/null
cp "$d/kernel" "$d/kernel2"
echo >>"$d/kernel2"
"$FED" trust add "$d/kernel2" --kind kernel --authority "$AUTH" --key "$ADMIN_KEY" >/dev/null
"$FED" snapshot create --kernel "$d/kernel2" --base "$d/base.img" \
	--files "$d/web" --run 'httpd -f -p 80 -h /var/www' \
	--service revoked.example.org:80 --guest-port 80 --key "$d/owner.key" \
	-o "$fake/commit/revoked-kernel.fedsnap" --version 1 >/dev/null
k2=$(sha256sum <"$d/kernel2" | cut -c1-64)
# a valid DNS name of 253 bytes: "host:port" too long for the relay's map
long=$(printf 'a%.0s' $(seq 63)).$(printf 'b%.0s' $(seq 63)).$(printf 'c%.0s' $(seq 63)).$(printf 'd%.0s' $(seq 61))
"$FED" snapshot unpack "$d/web.fedsnap" --base "$d/base.img" -o "$d/web.cow" >/dev/null
"$FED" snapshot pack --base "$d/base.img" --cow "$d/web.cow" \
	--service "$long:80" --guest-port 80 --name long \
	--kernel-hash "$(sha256sum <"$d/kernel" | cut -c1-64)" \
	--key "$d/owner.key" -o "$fake/commit/long-name.fedsnap" --version 1 >/dev/null
# a kernel that cannot boot (a truncated copy), trusted and published: the
# vmrunner probes it before the first boot and refuses what names it
head -c $((1 << 20)) "$d/kernel" >"$d/kernel3"
chmod 0755 "$d/kernel3"
k3=$(sha256sum <"$d/kernel3" | cut -c1-64)
"$FED" trust add "$d/kernel3" --kind kernel --authority "$AUTH" --key "$ADMIN_KEY" >/dev/null
wait_for 20 test -e "$MNT_owner/kernels/$k3"
cp "$d/kernel3" "$MNT_owner/publish/" || not_ok "the owner publishes the truncated kernel"
"$FED" snapshot pack --base "$d/base.img" --cow "$d/web.cow" \
	--service broken.example.org:80 --guest-port 80 --kernel-hash "$k3" \
	--key "$d/owner.key" -o "$fake/commit/broken-kernel.fedsnap" --version 1 >/dev/null
check "the admin revokes the second kernel" \
	"$FED" trust revoke "$k2" --authority "$AUTH" --key "$ADMIN_KEY"
# (read-only, as fedfs shows a file in commit/ once it has checked it)
chmod 0444 "$fake"/commit/*
mkdir -p "$d/vmr2"
# its one host port is taken (by socat), for the VM booted below
socat -u TCP-LISTEN:30000 OPEN:/dev/null &
socat_pid=$!
on_exit "kill $socat_pid"
start_vmrunner "$d/vmr2" "$d/vmr2.log" "$fake" "$KEY_peer" \
	--lease-range 10.78.0.0/16 --port-range 30000-30000
vmr3=$VMR_PID
check "a bad signature is refused with a clear line" \
	wait_for 20 grep -q 'refusing badsig.fedsnap: .*signature' "$d/vmr2.log"
check "an untrusted base is refused with a clear line" \
	wait_for 20 grep -q "refusing untrusted-base.fedsnap: base [0-9a-f]\{8\}\.\. is not trusted" "$d/vmr2.log"
check "a revoked kernel is refused with a clear line" \
	wait_for 20 grep -q "refusing revoked-kernel.fedsnap: kernel ${k2:0:8}\.\. is revoked" "$d/vmr2.log"
check "a service name too long for the relay is refused with a clear line" \
	wait_for 20 grep -q 'refusing long-name.fedsnap: service a*\.\. is 256 bytes long; the relay maps names of at most 127' "$d/vmr2.log"
check "a kernel that cannot boot is refused with its last words, before any boot" \
	wait_for 30 grep -q "refusing broken-kernel.fedsnap: kernel .*/kernels/$k3 \(could not be run\|died before its first process ran\)" "$d/vmr2.log"
check "and it is refused once, not booted again and again" \
	test "$(grep -c 'refusing broken-kernel.fedsnap' "$d/vmr2.log")" = 1
check "and it is no VM of the vmrunner's" \
	sh -c "! jq -e '.vms[] | select(.file==\"broken-kernel.fedsnap\")' '$d/vmr2/status.json' >/dev/null"
check "nothing boots" sh -c "! grep -q booting '$d/vmr2.log' && test \$(ip netns list | grep -c '^$(netns_prefix "$d/vmr2")') = 0"
check "fedfs refuses the bad signature in commit/ too" \
	sh -c "! cp '$fake/commit/badsig.fedsnap' '$MNT_peer/commit/' 2>/dev/null"
grep refusing "$d/vmr2.log" | sed 's/^/# /'
# a VM that answers but gets no host port (the range used up) stays
# starting and tries again seconds later (5 s), not at every 10 ms probe;
# a file older than the version of its service that runs is not booted
commit_fake() {	# commit_fake SRC NAME: hand a read-only file over at once
	cp "$1" "$fake/$2.tmp" && chmod 0444 "$fake/$2.tmp" &&
		mv "$fake/$2.tmp" "$fake/commit/$2"
}
# its console.log (kept across restarts) already at the 8 MiB cap
web2_log=$d/vmr2/vms/$("$FED" snapshot inspect "$d/web2.fedsnap" --json | jq -r .id)/console.log
mkdir -p "${web2_log%/*}"
head -c $((8 << 20)) /dev/zero | tr '\0' x >"$web2_log"
commit_fake "$d/web2.fedsnap" noport.fedsnap
check "a VM that gets no host port says so" \
	wait_for 60 grep -q 'noport.fedsnap: no host port' "$d/vmr2.log"
check "a console.log past 8 MiB moves to console.log.old" \
	test "$(stat -c %s "$web2_log.old" 2>/dev/null)" = $((8 << 20))
check "and a new one starts with a line saying so, then the console" \
	sh -c "head -n 1 '$web2_log' | grep -q 'console.log passed 8 MiB' &&
		grep -q 'fed-init' '$web2_log'"
commit_fake "$d/web.fedsnap" older.fedsnap
check "a file older than the version that runs is not booted" \
	wait_for 10 grep -q 'older.fedsnap: not booted: noport.fedsnap runs version 2 of www.example.org:80, newer than its 1' "$d/vmr2.log"
sleep 3.5	# a rescan (3 s) later
check "that is said once, not at every scan" \
	test "$(grep -c 'older.fedsnap: not booted' "$d/vmr2.log")" = 1
check "and it is not listed" \
	sh -c "! jq -e '.vms[] | select(.file==\"older.fedsnap\")' '$d/vmr2/status.json' >/dev/null"
check "the VM without a host port tried again seconds later, not at every probe" \
	test "$(grep -c 'noport.fedsnap: no host port' "$d/vmr2.log")" -le 2
check "it stays starting meanwhile" \
	test "$(jq -r '.vms[] | select(.file=="noport.fedsnap") | .state' "$d/vmr2/status.json")" = starting
# an entry it cannot stat for another reason than ENOENT (ELOOP here, EIO
# or EINTR through fedfs) says nothing about the file: not a withdrawal
ln -s noport.fedsnap "$fake/loop.tmp"
mv -T "$fake/loop.tmp" "$fake/commit/noport.fedsnap"
sleep 1.5	# inotify: a scan at once
check "an entry it cannot stat keeps its VM" \
	sh -c "! grep -q 'noport.fedsnap: withdrawn' '$d/vmr2.log' &&
		jq -e '.vms[] | select(.file==\"noport.fedsnap\")' '$d/vmr2/status.json' >/dev/null"
kill "$vmr3"
wait_for 15 gone "$vmr3"
kill "$socat_pid"

# a kernel it cannot read yet (through fedfs, a network hiccup gives EIO;
# here it is missing) is a reason to try again later, not to refuse the
# file for as long as it stays in commit/
later=$d/later
mkdir -p "$later/commit" "$later/kernels"
ln -s "$MNT_peer/bases" "$later/bases"
cp "$d/web.fedsnap" "$later/commit/web.fedsnap"
chmod 0444 "$later/commit/web.fedsnap"
start_vmrunner "$d/vmr4" "$d/vmr4.log" "$later" "$KEY_peer" \
	--lease-range 10.80.0.0/16 --port-range 30100-30199
vmr4=$VMR_PID
check "a kernel it cannot read is a reason to try again, said so" \
	wait_for 20 grep -q 'web.fedsnap: not started: .*; trying again in 3 s' "$d/vmr4.log"
ln -s "$MNT_peer/kernels/$(sha256sum <"$d/kernel" | cut -c1-64)" "$later/kernels/"
check "once it can, the file boots" \
	wait_for 60 sh -c "jq -e '.vms[] | select(.file==\"web.fedsnap\" and .state==\"up\")' '$d/vmr4/status.json' >/dev/null"
check "and it was never refused" sh -c "! grep -q 'refusing web.fedsnap' '$d/vmr4.log'"
kill "$vmr4"
wait_for 15 gone "$vmr4"

# a newer version replaces the old one on the same host port
web2_id=$("$FED" snapshot inspect "$d/web2.fedsnap" --json | jq -r .id)
check "the owner publishes version 2" cp "$d/web2.fedsnap" "$MNT_owner/publish/"
check "the peer's fedfs lists it" wait_for 60 test -e "$MNT_peer/deltas/$web2_id.fedsnap"
old_pid=$(vm '.vms[] | select(.file=="web.fedsnap") | .pid')
# a client connected to version 1 before the handover, its request not
# sent yet: it is answered by version 1 after the switch
exec 5<>"/dev/tcp/127.0.0.1/$web_port"
exec 6<>"/dev/tcp/127.0.0.1/$web_port"	# one left idle through the drain
check "the peer commits version 2 of the web service" \
	cp "$MNT_peer/deltas/$web2_id.fedsnap" "$MNT_peer/commit/web2.fedsnap"
check "version 2 comes up" wait_for 60 is_up web2.fedsnap
check "version 1 drains" test "$(vm_state web.fedsnap)" = draining
printf 'GET / HTTP/1.0\r\n\r\n' >&5
check "a connection open before the handover is served by version 1" \
	timeout 20 grep -qF "$(cat "$d/web/var/www/index.html")" <&5
exec 5<&-
check "version 1 is stopped once drained" wait_for 20 sh -c "jq -e '.vms[] | select(.file==\"web.fedsnap\" and .state==\"stopped\")' '$d/vmr/status.json' >/dev/null"
check "its UML is gone" gone "$old_pid"
check "a connection still open to version 1 is reset when it stops" \
	timeout 5 sh -c 'cat >/dev/null 2>&1 <&6; true'
exec 6<&-
check "the host port's lease moved to version 2" \
	test "$(jq --arg id "$web2_id" '.leases[] | select(.key==$id) | .port' "$d/vmr/leases.json")" = "$web_port"
check "version 2 serves on the same host port" \
	test "$(vm '.vms[] | select(.file=="web2.fedsnap") | .host_port')" = "$web_port"
check "the host port returns the new page" \
	test "$(http "$web_port")" = "$(cat "$d/web2/var/www/index.html")"
check "one machine namespace is left (version 1's is gone)" \
	test "$(machine_namespaces "$d/vmr")" = 1

# SIGTERM: everything released
uml_pid=$(vm '.vms[] | select(.file=="web2.fedsnap") | .pid')
# the start-up probe: a vmrunner whose --kernel cannot boot here says why
# in one line and takes no UML snapshot, instead of booting and
# crash-looping it
fake2=$d/fake2
mkdir -p "$fake2/commit" "$d/vmr5"
ln -s "$MNT_peer/kernels" "$fake2/kernels"
ln -s "$MNT_peer/bases" "$fake2/bases"
cp "$d/blog.fedsnap" "$fake2/commit/blog.fedsnap"
chmod 0444 "$fake2/commit/blog.fedsnap"
start_vmrunner "$d/vmr5" "$d/vmr5.log" "$fake2" "$KEY_peer" \
	--lease-range 10.79.0.0/16 --port-range 30001-30001 --kernel "$d/kernel3"
vmr5=$VMR_PID
check "a vmrunner whose kernel cannot boot here says why at start-up, in one line" \
	wait_for 30 grep -q "this host cannot run UML machines: kernel $d/kernel3 .*; refusing every UML snapshot" "$d/vmr5.log"
check "and refuses the snapshot in commit/ instead of booting it" \
	wait_for 20 grep -q "refusing blog.fedsnap: this host cannot run UML machines: " "$d/vmr5.log"
check "and runs no VM" test "$(jq '.vms | length' "$d/vmr5/status.json")" = 0
grep -E 'cannot run|refusing' "$d/vmr5.log" | sed 's/^/# /'
kill "$vmr5"
wait_for 15 sh -c "! kill -0 $vmr5 2>/dev/null"
kill "$vmr2"
check "SIGTERM stops the vmrunner" wait_for 15 sh -c "! kill -0 $vmr2 2>/dev/null"
check "and its UML" sh -c "! kill -0 $uml_pid 2>/dev/null"
check "no machine namespace is left" test "$(machine_namespaces "$d/vmr")" = 0
check "no lease is left" test "$(jq '.leases | length' "$d/vmr/leases.json")" = 0
check "the port is closed" sh -c "! curl -fsS --max-time 2 http://127.0.0.1:$web_port/ >/dev/null 2>&1"
check "the authority has it down" \
	test "$(auth_up www.example.org:80 "$peer_pub")" = false
exit 0

#!/usr/bin/env bash
# The jail, end to end: a hostile owner's snapshot whose service probes its
# way out and writes what it found into the page it serves, run by a real
# vmrunner on a peer (a network namespace this test makes, with a "host
# network" 10.66.0.1/24 on its lo).  From inside, the guest must
# not load a module, reach the host's own addresses (a listener the test
# starts on 0.0.0.0, the fedfs object server, the gateway, another VM's
# host port), 169.254.169.254 or the host over IPv6 link-local; a full
# tmpfs stops at its size and the VM's host memory within its limit; a
# fork storm of 2,000 stops at the VM's pids.max (every guest process is a
# host process of UML's) and the host can still fork.  The storm's
# processes are killed with shell builtins only and waited for before the
# service starts, so the guest can fork its service again.  The page is
# still served through the relay.  From outside, every process of the VM
# has a uid and gid of its
# own, no capability, NO_NEW_PRIVS, a seccomp filter, its own mount, pid
# and network namespaces and a cgroup with its limits; withdrawing, and
# kill -9 of the vmrunner followed by a restart, leave no mount, cgroup,
# namespace or process behind.
source "$(dirname "$0")/lib.sh"
need_uml

if [ -z "${FED_JAIL_NS:-}" ]; then
	if [ "$(id -u)" != 0 ] || [ ! -e /dev/net/tun ]; then
		echo "ok - # SKIP needs root and /dev/net/tun"
		exit 0
	fi
	ns=fedjail$$
	ip netns add "$ns" || { not_ok "ip netns add $ns"; exit 1; }
	on_exit "ip netns del $ns"
	on_exit "for p in \$(ip netns pids $ns); do kill -9 \$p; done; sleep 0.2"
	ip -n "$ns" link set lo up
	ip -n "$ns" addr add 10.66.0.1/24 dev lo
	# the Internet: a namespace behind the peer's uplink 203.0.113.1/30,
	# holding a server at 198.51.100.1 (ports 8443 and 8444)
	wan=fedjailwan$$
	ip netns add "$wan" || { not_ok "ip netns add $wan"; exit 1; }
	on_exit "ip netns del $wan"
	on_exit "for p in \$(ip netns pids $wan); do kill -9 \$p; done"
	ip -n "$ns" link add wan0 type veth peer name wan0 netns "$wan"
	ip -n "$ns" addr add 203.0.113.1/30 dev wan0
	ip -n "$ns" link set wan0 up
	ip -n "$ns" route add default via 203.0.113.2
	ip -n "$wan" link set lo up
	ip -n "$wan" addr add 198.51.100.1/32 dev lo
	ip -n "$wan" addr add 203.0.113.2/30 dev wan0
	ip -n "$wan" link set wan0 up
	for port in 8443 8444; do
		ip netns exec "$wan" socat TCP-LISTEN:$port,bind=198.51.100.1,fork,reuseaddr \
			SYSTEM:"echo internet-$port" &
	done
	FED_JAIL_NS=$ns nsenter --net="/run/netns/$ns" bash "$0"
	exit $?
fi

mktempdir d
HOST=10.66.0.1
vm() { jq -r "$1" "$d/vmr/status.json" 2>/dev/null; }
is_up() { [ "$(vm ".vms[] | select(.file==\"$1\") | .state")" = up ]; }
prefix() { echo "fed$(printf %s "$(realpath "$1")" | sha256sum | cut -c1-8)"; }
start_vmrunner() {	# start_vmrunner STATE LOG [options]
	"$BINDIR/fed-vmrunner" --fed "$MNT_peer" --state "$1" --authority "$AUTH" \
		--key "$KEY_peer" --public-addr "$HOST" --mem 48 --no-follow -f \
		--egress-allow tcp/8443 \
		"${@:3}" >>"$2" 2>&1 &
	VMR_PID=$!
	disown "$VMR_PID"
	on_exit "kill_jails '$1'"
	on_exit "kill -9 $VMR_PID"
}

# what the guest will try to reach: a listener on every host address, the
# peer's object server, and later the other VM's host port
socat TCP-LISTEN:7777,fork,reuseaddr SYSTEM:'echo host-secret' &
on_exit "kill $!"
bash "$ROOT/scripts/mkbase.sh" "$d/base.img" >/dev/null
cp "$UML" "$d/kernel"
"$FED" keygen -o "$d/owner.key" >/dev/null
start_authority "$d/auth" --publish-allowance 10 || { not_ok "the authority starts"; exit 1; }
"$FED" trust add "$d/base.img" --kind base --authority "$AUTH" --key "$ADMIN_KEY" >/dev/null
"$FED" trust add "$d/kernel" --kind kernel --authority "$AUTH" --key "$ADMIN_KEY" >/dev/null
start_fedfs owner 127.0.0.1 "$d"
start_fedfs peer "$HOST" "$d"
objsrv_port=${SERVE_peer##*:}

# the other VM: a web page whose owner asks for egress to tcp/8443 and
# tcp/8444; this peer lends tcp/8443 only.  It probes and says what it
# reached in its page
mkdir -p "$d/plain/var/www"
cat >"$d/plain/probe.sh" <<EOF
out=/var/www/index.html
r() { echo "\$*" >>\$out; }
echo "plain page" >\$out
try() {	# try NAME HOST PORT
	if echo | nc -w 2 "\$2" "\$3" >/tmp/got 2>/dev/null && [ -s /tmp/got ]; then
		r reach \$1 yes
	else
		r reach \$1 no
	fi
}
try internet-granted 198.51.100.1 8443
try internet-not-granted 198.51.100.1 8444
try host-uplink 203.0.113.1 7777
try host-listener $HOST 7777
try metadata 169.254.169.254 80
r done
EOF
"$FED" snapshot create --kernel "$d/kernel" --base "$d/base.img" --files "$d/plain" \
	--run 'sh /probe.sh; httpd -f -p 80 -h /var/www' --service plain.example.org:80 \
	--egress tcp/8443 --egress tcp/8444 \
	--guest-port 80 --key "$d/owner.key" -o "$d/plain.fedsnap" --version 1 >/dev/null
check "the owner's egress request is in the signed manifest" \
	test "$("$FED" snapshot inspect "$d/plain.fedsnap" --json | jq -c .manifest.egress)" = '["tcp/8443","tcp/8444"]'

# the hostile one: /etc/fed/service probes, writes the page, then serves it
mkdir -p "$d/evil/var/www" "$d/evil/lib" "$d/evil/etc/fed"
head -c 4096 /dev/urandom >"$d/evil/lib/evil.ko"
cat >"$d/evil/probe.sh" <<EOF
out=/var/www/index.html
r() { echo "\$*" >>\$out; }
: >\$out
r hostile page
insmod /lib/evil.ko 2>/dev/null && r insmod loaded || r insmod refused
try() {	# try NAME HOST PORT
	if echo | nc -w 2 "\$2" "\$3" >/tmp/got 2>/dev/null && [ -s /tmp/got ]; then
		r reach \$1 yes
	else
		r reach \$1 no
	fi
}
try listener $HOST 7777
try objsrv $HOST $objsrv_port
try gateway 10.255.255.1 7777
try metadata 169.254.169.254 80
try othervm $HOST \$(cat /etc/fed/otherport 2>/dev/null || echo 1)
try internet 198.51.100.1 8443
own=\$(ip -6 addr show dev vec0 | sed -n 's/.*inet6 \\(fe80[^/]*\\).*/\\1/p')
ping -6 -c 2 -W 1 -I vec0 ff02::1 >/tmp/p6 2>&1
r link-local-replies \$(grep 'bytes from fe80' /tmp/p6 | grep -vc "from \$own")
mount -t tmpfs -o size=40m none /mnt
dd if=/dev/zero of=/mnt/fill bs=1M count=400 2>/dev/null
r tmpfs-filled-mib \$(( \$(stat -c %s /mnt/fill 2>/dev/null || echo 0) / 1048576 ))
rm -f /mnt/fill
umount /mnt
# the storm: a subshell forks sleeps until a fork fails (ash then ends
# it); only builtins from there on, as nothing can fork
: >/tmp/storm
( i=0; while [ \$i -lt 2000 ]; do sleep 600 & echo \$! >>/tmp/storm; i=\$((i + 1)); done ) 2>/dev/null
n=0
while read p; do kill -9 \$p 2>/dev/null; n=\$((n + 1)); done </tmp/storm
while read p; do k=0; while [ -e /proc/\$p ] && [ \$k -lt 5000 ]; do k=\$((k + 1)); done; done </tmp/storm
r storm-started \$n
r done
EOF

start_vmrunner "$d/vmr" "$d/vmr.log"
vmr=$VMR_PID
for f in base.img kernel plain.fedsnap; do cp "$d/$f" "$MNT_owner/publish/"; done
plain_id=$("$FED" snapshot inspect "$d/plain.fedsnap" --json | jq -r .id)
wait_for 30 test -e "$MNT_peer/deltas/$plain_id.fedsnap"
cp "$MNT_peer/deltas/$plain_id.fedsnap" "$MNT_peer/commit/plain.fedsnap"
check "a plain VM comes up jailed" wait_for 60 is_up plain.fedsnap
other_port=$(vm '.vms[] | select(.file=="plain.fedsnap") | .host_port')
plain_page() { curl -fsS --max-time 3 "http://127.0.0.1:$other_port/"; }
wait_for 60 sh -c "curl -fsS --max-time 3 http://127.0.0.1:$other_port/ | grep -q '^done$'"
plain_page | sed 's/^/# egress guest: /'
plain_said() { plain_page | grep -qx "$1"; }
check "egress: the granted port of an Internet server is reached" plain_said "reach internet-granted yes"
check "egress: a port the peer does not lend is not" plain_said "reach internet-not-granted no"
check "egress: the host's own uplink address is unreachable" plain_said "reach host-uplink no"
check "egress: nor the host's network" plain_said "reach host-listener no"
check "egress: nor 169.254.169.254" plain_said "reach metadata no"
check "status.json says what was granted" \
	test "$(vm '.vms[] | select(.file=="plain.fedsnap") | .egress | join(",")')" = tcp/8443
check "the log says what was not" grep -q "asks for egress tcp/8443,tcp/8444; this peer lends tcp/8443" "$d/vmr.log"
echo "$other_port" >"$d/evil/etc/fed/otherport"
"$FED" snapshot create --kernel "$d/kernel" --base "$d/base.img" --files "$d/evil" \
	--run 'sh /probe.sh; httpd -f -p 80 -h /var/www' --service evil.example.org:80 \
	--guest-port 80 --key "$d/owner.key" -o "$d/evil.fedsnap" --version 1 >/dev/null ||
	not_ok "the hostile snapshot is made"
cp "$d/evil.fedsnap" "$MNT_owner/publish/"
evil_id=$("$FED" snapshot inspect "$d/evil.fedsnap" --json | jq -r .id)
wait_for 30 test -e "$MNT_peer/deltas/$evil_id.fedsnap"
cp "$MNT_peer/deltas/$evil_id.fedsnap" "$MNT_peer/commit/evil.fedsnap"
check "the hostile VM comes up and serves through the relay" wait_for 180 is_up evil.fedsnap
evil_port=$(vm '.vms[] | select(.file=="evil.fedsnap") | .host_port')
page() { curl -fsS --max-time 3 "http://127.0.0.1:$evil_port/"; }
wait_for 120 sh -c "curl -fsS --max-time 3 http://127.0.0.1:$evil_port/ | grep -q '^done$'"
page | sed 's/^/# guest: /'
said() { page | grep -qx "$1"; }
check "the page is served through the relay" said "hostile page"
check "insmod is refused" said "insmod refused"
check "a listener on the host's address is unreachable" said "reach listener no"
check "the fedfs object server is unreachable" said "reach objsrv no"
check "the gateway is unreachable" said "reach gateway no"
check "169.254.169.254 is unreachable" said "reach metadata no"
check "another VM's host port is unreachable" said "reach othervm no"
check "a guest that asked for no egress reaches no Internet server" said "reach internet no"
check "nothing answers over IPv6 link-local" said "link-local-replies 0"
check "a tmpfs filled in the guest stops at its size" \
	sh -c "n=\$(curl -fsS --max-time 3 http://127.0.0.1:$evil_port/ | sed -n 's/^tmpfs-filled-mib //p'); [ \"\$n\" -le 40 ]"
storm=$(page | sed -n 's/^storm-started //p')
echo "# the guest's fork storm started ${storm:-?} of 2000 processes"
check "a guest fork storm of 2000 stops at pids.max" \
	test "${storm:-0}" -gt 0 -a "${storm:-2000}" -lt 128
check "the host can still fork" sh -c 'for i in $(seq 50); do true & done; wait'

# --- from outside ---------------------------------------------------------
cg=$(prefix "$d/vmr")
cgdir=/sys/fs/cgroup/memory/fed/${cg#fed}/${evil_id:0:16}
[ -d /sys/fs/cgroup/memory ] || cgdir=/sys/fs/cgroup/fed/${cg#fed}/${evil_id:0:16}
pids=$(cat "$cgdir/cgroup.procs" 2>/dev/null)
echo "# $(echo $pids | wc -w) processes in $cgdir"
check "the VM's processes are in its cgroup" test -n "$pids"
all_jailed() {
	local p st
	for p in $pids; do
		st=/proc/$p/status
		[ -e "$st" ] || continue
		awk '/^Uid:|^Gid:/ { for (i = 2; i <= 5; i++) if ($i == 0) exit 1 }' "$st" || return 1
		grep -q '^CapEff:	0000000000000000$' "$st" || return 1
		grep -q '^NoNewPrivs:	1$' "$st" || return 1
		grep -q '^Seccomp:	2$' "$st" || return 1
		for n in mnt pid net; do
			[ "$(readlink "/proc/$p/ns/$n")" != "$(readlink "/proc/$vmr/ns/$n")" ] || return 1
		done
	done
}
check "every VM process: uid and gid not 0, CapEff 0, NoNewPrivs, seccomp, own mount/pid/net namespaces" all_jailed
limit=$(cat "$cgdir/memory.limit_in_bytes" 2>/dev/null || cat "$cgdir/memory.max")
peak=$(cat "$cgdir/memory.max_usage_in_bytes" 2>/dev/null || cat "$cgdir/memory.peak" 2>/dev/null || echo 0)
echo "# memory limit $((limit >> 20)) MiB, peak $((peak >> 20)) MiB (tmpfs fill included)"
check "its memory limit is the machine's plus the jail's overhead" test "$limit" = $(((48 + 24) << 20))
check "and its peak stayed within it" test "$peak" -le "$limit"
pcg=/sys/fs/cgroup/pids/fed/${cg#fed}/${evil_id:0:16}
[ -d /sys/fs/cgroup/pids ] || pcg=$cgdir
check "its pids limit is 128" test "$(cat "$pcg/pids.max")" = 128
check "the guest sees no host path on its command line" \
	sh -c "! grep -a 'Kernel command line' '$d/vmr/vms/$evil_id/console.log' | grep -q '$d'"

# --- clean-up --------------------------------------------------------------
ns_left() { ip netns list | grep -c "^$(prefix "$1")-"; }
rm "$MNT_peer/commit/evil.fedsnap"
check "withdrawn: its cgroup is gone" wait_for 15 test ! -e "$cgdir"
all_gone() { local p; for p in "$@"; do gone "$p" || return 1; done; }
check "and its processes" wait_for 10 all_gone $pids
check "and its namespace (one VM's left)" test "$(ns_left "$d/vmr")" = 1
check "and no mount of its jail" sh -c "! grep -q '$d/vmr/vms/$evil_id' /proc/mounts"
plain_cg=/sys/fs/cgroup/memory/fed/${cg#fed}/${plain_id:0:16}
[ -d /sys/fs/cgroup/memory ] || plain_cg=/sys/fs/cgroup/fed/${cg#fed}/${plain_id:0:16}
plain_pids=$(cat "$plain_cg/cgroup.procs" 2>/dev/null)
kill -9 "$vmr"
wait_for 10 gone "$vmr"
start_vmrunner "$d/vmr" "$d/vmr.log"
vmr=$VMR_PID
check "after kill -9 and a restart the old VM's processes are gone" \
	wait_for 20 all_gone $plain_pids
check "and the VM is up again" wait_for 60 is_up plain.fedsnap
kill "$vmr"
check "SIGTERM: the vmrunner stops" wait_for 20 gone "$vmr"
check "and leaves no cgroup" test ! -e "$plain_cg"
check "no namespace" test "$(ns_left "$d/vmr")" = 0
check "no jail mount" sh -c "! grep -q '$d/vmr/vms' /proc/mounts"
check "no uplink left" wait_for 10 sh -c "! ip -o link | grep -q ': fx'"
check "nor the uplinks' host table" sh -c "! nft list tables | grep -q 'fed_'"
no_jail_uid() { ! ps -eo uid= | awk '$1 >= 2000000 && $1 < 2001000' | grep -q .; }
check "no process of a jail's uid" wait_for 10 no_jail_uid
exit 0

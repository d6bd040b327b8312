# The /init contract tests of docs/base-image.md, on the base image $base
# (SHA-256 $base_sha): import, probe, a service on a tap, no modules or
# hostfs.  Sourced by tests/e2e/mkbase.sh (the busybox base) and
# tests/e2e/debian.sh (the Debian base); needs lib.sh, need_uml and $tmp.
# Each test name starts with $CONTRACT_LABEL.
L=${CONTRACT_LABEL:-busybox base}
BOOT_DEADLINE=${BOOT_DEADLINE:-30}

# --- UML helpers ------------------------------------------------------------
# Each UML runs in its own session (setsid), under timeout; the cleanup kills
# the whole session, which holds timeout, the kernel and every process UML
# forks.
sessions=()
kill_session() {
	local sid=$1
	pkill -TERM -s "$sid" 2>/dev/null
	wait_for 5 session_gone "$sid" || pkill -KILL -s "$sid" 2>/dev/null
	wait_for 5 session_gone "$sid"
}
session_gone() { ! pgrep -s "$1" >/dev/null; }
kill_all_sessions() {
	local s
	for s in "${sessions[@]}"; do kill_session "$s"; done
}
on_exit kill_all_sessions

# uml_start LOG [NETNS] -- kernel-args...   ; sets $uml_sid
# Console output goes through a pipe (UML refuses a regular file as fd 1).
uml_start() {
	local log=$1 ns=$2
	shift 3
	local -a pre=()
	[ -n "$ns" ] && pre=(nsenter "--net=/run/netns/$ns")
	setsid bash -c 'log=$1; shift; "$@" 2>&1 </dev/null | cat >"$log"' _ \
		"$log" "${pre[@]}" timeout -k 5 120 "$UML" \
		mem=64M con=null con0=null,fd:1 root=/dev/ubda rw init=/init "$@" &
	uml_sid=$!
	sessions+=("$uml_sid")
}

# uml_boot_wait LOG -- kernel-args...  : boot and wait until UML exits by
# itself (power off) within BOOT_DEADLINE; sets $boot_ms.  A guest kernel
# that ran out of memory before it mounted its root (error -12 opening ubda,
# with zswap failing to start just before: seen twice in about a dozen CI
# runs on 2026-11-30, never in 25 boots in a row alone) is booted once more:
# that is the UML kernel's start, not the base image under test.
uml_boot_wait() {
	uml_boot_once "$@" || return 1
	if grep -a -q 'Kernel panic' "$1" && grep -a -q 'error -12' "$1"; then
		echo "# the UML kernel ran out of memory while booting (error -12): booting again"
		uml_boot_once "$@"
	fi
}

uml_boot_once() {
	local log=$1 t0 t1
	shift 2
	t0=$(date +%s%N)
	uml_start "$log" "" -- "$@"
	if wait_for "$BOOT_DEADLINE" session_gone "$uml_sid"; then
		t1=$(date +%s%N)
		boot_ms=$(((t1 - t0) / 1000000))
		return 0
	fi
	echo "# UML did not power off within ${BOOT_DEADLINE}s; log tail:"
	tail -n 20 "$log" | sed 's/^/#   /'
	kill_session "$uml_sid"
	return 1
}

# probe_content LOG : what /init printed between the probe markers
probe_content() {
	sed -n '/^fed-probe-begin /,/^fed-probe-end$/p' "$1" | sed '1d;$d'
}

show_log() {
	echo "# $1:"
	grep -a -E 'fed-|Kernel panic|error|fail' "$2" | head -n 20 | sed 's/^/#   /'
}


# --- 2. import from an import disk into a fresh COW ------------------------
token=tok-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
mkdir -p "$tmp/import/files/etc/deep/er"
printf 'motd %s\n' "$token" >"$tmp/import/files/etc/fed-test-motd"
printf 'nested %s\n' "$token" >"$tmp/import/files/etc/deep/er/file"
chmod 0600 "$tmp/import/files/etc/deep/er/file"
import_disk "$tmp/import" "$tmp/import.img"
if uml_boot_wait "$tmp/import.log" -- "ubd0=$tmp/snap.cow,$base" \
	"ubd1r=$tmp/import.img" fed.import=/dev/ubdb &&
	grep -a -q '^fed-init: imported$' "$tmp/import.log" &&
	grep -a -q -E 'reboot: (System halted|Power down)' "$tmp/import.log"; then
	echo "# import boot (power on to exit): ${boot_ms} ms"
	ok "$L: boot with fed.import copies the import disk's files into the COW and powers off"
else
	show_log "import boot" "$tmp/import.log"
	not_ok "$L: boot with fed.import copies the import disk's files into the COW and powers off"
fi
# The contract refuses anything but a ubd disk as the import's source.
if uml_boot_wait "$tmp/import-bad.log" -- "ubd0=$tmp/bad.cow,$base" fed.import=/etc &&
	grep -a -q '^fed-init: import failed: fed.import=/etc is not a /dev/ubd disk$' "$tmp/import-bad.log"; then
	ok "$L: fed.import of anything but a /dev/ubd disk is refused"
else
	show_log "bad import boot" "$tmp/import-bad.log"
	not_ok "$L: fed.import of anything but a /dev/ubd disk is refused"
fi

# --- 2b. setup commands run in the guest after the copy ----------------------
# The import disk's setup script (fed snapshot create --setup) runs with the
# disk on /mnt, its output prefixed; a failing one fails the import.
mkdir -p "$tmp/setup/files/etc" "$tmp/setup/setup-files"
printf 'from setup-files %s\n' "$token" >"$tmp/setup/setup-files/data"
printf 'echo setup says %s\ncp /mnt/setup-files/data /etc/setup-made\n' "$token" >"$tmp/setup/setup"
import_disk "$tmp/setup" "$tmp/setup.img"
res=1
if uml_boot_wait "$tmp/setup.log" -- "ubd0=$tmp/setup.cow,$base" \
	"ubd1r=$tmp/setup.img" fed.import=/dev/ubdb &&
	grep -a -q "^fed-init: setup: setup says $token\$" "$tmp/setup.log" &&
	grep -a -q '^fed-init: imported$' "$tmp/setup.log" &&
	uml_boot_wait "$tmp/setup-probe.log" -- "ubd0=$tmp/setup.cow,$base" fed.probe=/etc/setup-made &&
	[ "$(probe_content "$tmp/setup-probe.log")" = "from setup-files $token" ]; then
	res=0
else
	show_log "setup boot" "$tmp/setup.log"
fi
if [ $res -eq 0 ]; then
	ok "$L: the import disk's setup script runs in the guest after the copy, its files on /mnt"
else
	not_ok "$L: the import disk's setup script runs in the guest after the copy, its files on /mnt"
fi
printf 'echo before\nfalse\necho not reached\n' >"$tmp/setup/setup"
import_disk "$tmp/setup" "$tmp/setup-bad.img"
if uml_boot_wait "$tmp/setup-bad.log" -- "ubd0=$tmp/setup-bad.cow,$base" \
	"ubd1r=$tmp/setup-bad.img" fed.import=/dev/ubdb &&
	grep -a -q '^fed-init: import failed: setup exited 1$' "$tmp/setup-bad.log" &&
	! grep -a -q 'not reached' "$tmp/setup-bad.log"; then
	ok "$L: a failing setup command stops the setup and fails the import"
else
	show_log "failing setup boot" "$tmp/setup-bad.log"
	not_ok "$L: a failing setup command stops the setup and fails the import"
fi

# --- 3. probe the COW, then the pristine base ---------------------------------
res=1
if uml_boot_wait "$tmp/probe.log" -- "ubd0=$tmp/snap.cow,$base" fed.probe=/etc/fed-test-motd; then
	echo "# probe boot: ${boot_ms} ms"
	if [ "$(probe_content "$tmp/probe.log")" = "motd $token" ] &&
		uml_boot_wait "$tmp/probe2.log" -- "ubd0=$tmp/snap.cow,$base" fed.probe=/etc/deep/er/file &&
		[ "$(probe_content "$tmp/probe2.log")" = "nested $token" ]; then
		if uml_boot_wait "$tmp/probe0.log" -- "ubd0=$tmp/pristine.cow,$base" fed.probe=/etc/fed-test-motd &&
			grep -a -q '^fed-init: probe missing /etc/fed-test-motd$' "$tmp/probe0.log" &&
			! grep -a -q "$token" "$tmp/probe0.log" &&
			[ "$(sha256sum "$base" | cut -d' ' -f1)" = "$base_sha" ]; then
			res=0
		else
			show_log "pristine probe boot" "$tmp/probe0.log"
		fi
	else
		show_log "probe boot" "$tmp/probe.log"
	fi
else
	show_log "probe boot" "$tmp/probe.log"
fi
if [ $res -eq 0 ]; then
	ok "$L: fed.probe shows the imported files from the COW; the pristine base lacks them and is unchanged"
else
	not_ok "$L: fed.probe shows the imported files from the COW; the pristine base lacks them and is unchanged"
fi

# --- 4. a service on a tap inside a network namespace -------------------------
ns=fedmb$$
tap=fedtap$$
page="page $token"
web=$tmp/web/files
mkdir -p "$web/etc/fed" "$web/var/www"
# The files directory is 0700 (like mktemp -d): / must stay 0755.
chmod 0700 "$web"
printf 'stat -c %%a / >/var/www/rootmode; busybox httpd -f -p 80 -h /var/www\n' \
	>"$web/etc/fed/service"
printf '%s\n' "$page" >"$web/var/www/index.html"
import_disk "$tmp/web" "$tmp/web.img"

http_ok() {
	local got
	got=$(nsenter "--net=/run/netns/$ns" curl -s -m 2 http://10.77.0.2/) &&
		[ "$got" = "$page" ]
}

res=1
on_exit "ip netns del $ns"
on_exit "ip -n $ns link del $tap"
if ip netns add "$ns" &&
	ip -n "$ns" link set lo up &&
	ip -n "$ns" tuntap add dev "$tap" mode tap &&
	ip -n "$ns" addr add 10.77.0.1/24 dev "$tap" &&
	ip -n "$ns" link set "$tap" up; then
	if uml_boot_wait "$tmp/web-import.log" -- "ubd0=$tmp/web.cow,$base" \
		"ubd1r=$tmp/web.img" fed.import=/dev/ubdb &&
		grep -a -q '^fed-init: imported$' "$tmp/web-import.log"; then
		t0=$(date +%s%N)
		uml_start "$tmp/web.log" "$ns" -- "ubd0=$tmp/web.cow,$base" \
			"vec0:transport=tap,ifname=$tap" fed.ip=10.77.0.2/24 fed.gw=10.77.0.1
		web_sid=$uml_sid
		if wait_for "$BOOT_DEADLINE" http_ok; then
			t1=$(date +%s%N)
			echo "# web boot (power on to first HTTP answer): $(((t1 - t0) / 1000000)) ms"
			grep -a -q '^fed-init: service started$' "$tmp/web.log" &&
				[ "$(nsenter "--net=/run/netns/$ns" curl -s -m 2 http://10.77.0.2/rootmode)" = 755 ] &&
				grep -a -q '^fed-init: vec0 10.77.0.2/24$' "$tmp/web.log" && res=0
		fi
		[ $res -eq 0 ] || show_log "web boot" "$tmp/web.log"
		kill_session "$web_sid"
	else
		show_log "web import boot" "$tmp/web-import.log"
	fi
else
	echo "# could not create namespace $ns with tap $tap"
fi
if [ $res -eq 0 ]; then
	ok "$L: fed.ip on a tap in a namespace: the imported service answers HTTP"
else
	not_ok "$L: fed.ip on a tap in a namespace: the imported service answers HTTP"
fi

# --- 5. no way out: no modules, no hostfs -------------------------------------
# A hostile owner's guest runs as root.  With modules it could load code into
# the host process that runs its kernel; with hostfs it could mount the
# host's files.  fed's kernel has neither: init_module does not exist
# (ENOSYS, whatever the file: busybox says "kernel does not support
# requested operation"), and hostfs is no filesystem it knows.
jail=$tmp/escape/files
mkdir -p "$jail/etc/fed" "$jail/root"
head -c 4096 /dev/urandom >"$jail/root/evil.ko"
cat >"$jail/etc/fed/service" <<'SVC'
for i in 1 2 3 4; do
	busybox awk 'BEGIN { s = 0; for (i = 1; i <= 300000; i++) s += 1 / i; printf "%.15f\n", s }' >/tmp/fp$i &
done
wait
for i in 1 2 3 4; do echo "escape: fp $(cat /tmp/fp$i)"; done
busybox insmod /root/evil.ko 2>&1 | sed 's/^/escape: insmod: /'
[ -e /proc/modules ] && echo "escape: /proc/modules exists"
busybox mount -t hostfs -o / none /mnt 2>&1 | sed 's/^/escape: hostfs: /'
grep -q hostfs /proc/filesystems && echo "escape: hostfs is in /proc/filesystems"
ls /mnt | head -n 3 | sed 's/^/escape: \/mnt has /'
echo "escape: uname $(uname -r)"
echo "escape: done"
poweroff -f
SVC
import_disk "$tmp/escape" "$tmp/escape.img"
res=1
if uml_boot_wait "$tmp/escape-import.log" -- "ubd0=$tmp/escape.cow,$base" \
	"ubd1r=$tmp/escape.img" fed.import=/dev/ubdb &&
	uml_boot_wait "$tmp/escape.log" -- "ubd0=$tmp/escape.cow,$base"; then
	grep -a '^escape: ' "$tmp/escape.log" | sed 's/^/#   /'
	grep -a -q '^escape: done$' "$tmp/escape.log" && res=0
fi
[ $res -eq 0 ] || show_log "escape boot" "$tmp/escape.log"
check "$L: a guest's insmod fails: the kernel has no module loader" \
	grep -a -q "^escape: insmod: .*can't insert '/root/evil.ko': kernel does not support requested operation" "$tmp/escape.log"
check "$L: and there is no /proc/modules" \
	sh -c "! grep -a -q '^escape: /proc/modules exists' '$tmp/escape.log'"
check "$L: a guest's mount -t hostfs fails: no such filesystem" \
	grep -a -q '^escape: hostfs: .*No such device' "$tmp/escape.log"
check "$L: hostfs is not in /proc/filesystems, and /mnt stays empty" \
	sh -c "! grep -a -q -E '^escape: (hostfs is in|/mnt has)' '$tmp/escape.log'"
check "$L: the guest runs fed's kernel" grep -a -q '^escape: uname .*-fed$' "$tmp/escape.log"
# UML saves and restores each guest process's FPU state at every switch
# (through the host's XSAVE size on a CPU with AMX: kernel/uml/patches):
# four processes summing at once must each get the host's result
fp_host=$(busybox awk 'BEGIN { s = 0; for (i = 1; i <= 300000; i++) s += 1 / i; printf "%.15f\n", s }')
echo "# host: $fp_host; guest: $(grep -a '^escape: fp ' "$tmp/escape.log" | cut -d' ' -f3 | tr '\n' ' ')"
check "$L: four guest processes computing at once each get the host's floating-point result" \
	test "$(grep -a -c "^escape: fp $fp_host\$" "$tmp/escape.log")" = 4

# Shared by scripts/cluster.sh, scripts/demo.sh, bench/client.sh and
# tests/e2e/lib.sh (sourced).

# wait_for SECONDS CMD...: poll CMD every 0.1 s until it succeeds (its
# output discarded); 1 if it did not within SECONDS.
wait_for() {
	local deadline=$((SECONDS + $1))
	shift
	while ! "$@" >/dev/null 2>&1; do
		[ $SECONDS -ge $deadline ] && return 1
		sleep 0.1
	done
}

# jail_hash STATE: the 8 hex digits a fed-vmrunner with state dir STATE
# names its jails after: its cgroups are fed/<hash>/<vm>, its machines'
# network namespaces fed<hash>-<tap> (src/vmrunner/runner.c).
jail_hash() {
	printf %s "$(realpath -m "$1")" | sha256sum | cut -c1-8
}

# kill_jails STATE: what the vmrunner with state dir STATE left running,
# as a power cut would end it, or as its next start would: every process
# in its cgroups (the jailed machines live in no host's network namespace,
# so killing a host's namespace does not reach them), the cgroups, and its
# machines' network namespaces.
kill_jails() {
	local h dirs d p n tries
	h=$(jail_hash "$1")
	dirs=$(ls -d /sys/fs/cgroup/*/fed/"$h" /sys/fs/cgroup/fed/"$h" 2>/dev/null || true)
	for tries in 1 2 3 4 5 6 7 8 9 10; do
		p=
		for d in $dirs; do
			p+=" $(find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null || true)"
		done
		[ -z "${p// /}" ] && break
		kill -9 $p 2>/dev/null || true
		sleep 0.1
	done
	for d in $dirs; do
		find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
	done
	for n in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^fed$h-" || true); do
		ip netns del "$n" 2>/dev/null || true
	done
}

# Shared by scripts/cluster.sh, scripts/demo.sh and bench/client.sh (sourced).

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

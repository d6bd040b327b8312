# Shared by the benchmarks that time a commit to its first page
# (bench/vmrunner.sh, bench/qemu.sh); sourced after tests/e2e/lib.sh.

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# first_200 STATE FILE T0: seconds from T0 (a now) until the host port the
# vmrunner with state dir STATE gives commit/FILE answers HTTP 200; polls
# every 5 ms, gives up after 120 s (returns 1).  status.json is read by
# the shell itself (a jq per turn cost more than the turn's sleep, and its
# time would count against the machine being measured).
first_200() {
	local state=$1 file=$2 t0=$3 s re deadline=$((SECONDS + 120))
	re="\"file\": \"${file//./\\.}\",[^}]*\"host_port\": ([1-9][0-9]*)"
	while [ $SECONDS -lt $deadline ]; do
		s=
		read -r -d '' s <"$state/status.json" 2>/dev/null
		if [[ $s =~ $re ]] &&
		   curl -fs -o /dev/null --max-time 1 \
			"http://127.0.0.1:${BASH_REMATCH[1]}/"; then
			echo "$(now) - $t0" | bc
			return 0
		fi
		sleep 0.005
	done
	return 1
}

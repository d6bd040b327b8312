# Shared by the benchmarks that time a commit to its first page
# (bench/vmrunner.sh, bench/qemu.sh); sourced after tests/e2e/lib.sh.

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# first_200 STATE FILE T0 [SPLIT]: seconds from T0 (a now) until the host
# port the vmrunner with state dir STATE gives commit/FILE answers HTTP 200;
# polls every 5 ms, gives up after 120 s (returns 1).  status.json is read
# by the shell itself (a jq per turn cost more than the turn's sleep, and
# its time would count against the machine being measured).  With SPLIT, a
# file, appends "PORT_SEEN FIRST_GET": seconds from T0 until status.json
# showed the host port, and from then until the 200.
first_200() {
	local state=$1 file=$2 t0=$3 split=${4:-} s re seen= t
	local deadline=$((SECONDS + 120))
	re="\"file\": \"${file//./\\.}\",[^}]*\"host_port\": ([1-9][0-9]*)"
	while [ $SECONDS -lt $deadline ]; do
		s=
		read -r -d '' s <"$state/status.json" 2>/dev/null
		if [[ $s =~ $re ]]; then
			[ -n "$seen" ] || seen=$EPOCHREALTIME
			if curl -fs -o /dev/null --max-time 1 \
				"http://127.0.0.1:${BASH_REMATCH[1]}/"; then
				t=$(now)
				[ -z "$split" ] ||
					echo "$(echo "$seen - $t0" | bc) $(echo "$t - $seen" | bc)" >>"$split"
				echo "$t - $t0" | bc
				return 0
			fi
		fi
		sleep 0.005
	done
	return 1
}

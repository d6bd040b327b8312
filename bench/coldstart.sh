#!/usr/bin/env bash
# Benchmark: a lazy cold start of a Debian-based Apache snapshot in the
# namespace cluster (scripts/cluster.sh), against downloading the whole base
# and delta with curl and booting from local files, in the same run; once
# over plain veths ("loopback") and once with every switch port shaped to
# 100 Mbit/s and 10 ms each way (tc netem: 20 ms RTT between any two hosts;
# the rate alone, with tbf, where the kernel has no netem).
#
#   bench/coldstart.sh
#
# Per link: commit -> first HTTP 200 on p1 with an empty cache (it fetches
# from the owner); the same on p2 (it can fetch from the owner and p1);
# the same on p1 again, warm (withdrawn and committed again: every chunk
# it read is held), against p2's cold start;
# bytes of the base each fetched against its size; the delta against the
# paper's 6.3 MB; download-then-boot: curl base.img and the delta from the
# owner to the client, unpack, boot UML there, first 200.  Needs root,
# `make`, scripts/deps.sh.  About 5 min.
source "$(dirname "$0")/../tests/e2e/lib.sh"
source "$(dirname "$0")/lib.sh"
need_uml
mktempdir tmp
CLUSTER=$ROOT/scripts/cluster.sh
entry=$(bash "$ROOT/scripts/mkbase.sh" --debian-cached) || exit 1
export FED_CLUSTER=fed22cold FED_CLUSTER_DIR=$tmp/cluster BINDIR FED_UML_KERNEL=$UML
export FED_CLUSTER_BASE=$entry/base.img FED_CLUSTER_MEM=64 FED_CLUSTER_BASE_CHUNK=65536
on_exit "'$CLUSTER' down"
on() { "$CLUSTER" exec "$@"; }
ms() { echo "($2 - $1) * 1000 / 1" | bc; }

# first_200_on PEER T0: seconds from T0 until PEER's machine for
# commit/apache.fedsnap answers 200 at PEER's public address (from the client)
first_200_on() {
	local peer=$1 t0=$2 s re addr deadline=$((SECONDS + 180))
	addr=$(eval echo "\$ADDR_$peer")
	re='"file": "apache\.fedsnap",[^}]*"host_port": ([1-9][0-9]*)'
	while [ $SECONDS -lt $deadline ]; do
		s=
		read -r -d '' s <"$CLUSTER_DIR/$peer/vmrunner/status.json" 2>/dev/null
		if [[ $s =~ $re ]] && on client curl -fs -o /dev/null --max-time 1 \
			"http://$addr:${BASH_REMATCH[1]}/"; then
			echo "$(now) - $t0" | bc
			return 0
		fi
		sleep 0.01
	done
	return 1
}
fetched() { jq -r '.fetch.fetched_bytes' "$CLUSTER_DIR/$1/fed/.status"; }

# shape: every switch port 100 Mbit/s and 10 ms (20 ms RTT between any two
# hosts) with netem; a kernel without netem (CONFIG_NET_SCH_NETEM) gets the
# rate only (tbf), and the line says so: that favours the lazy start, whose
# fetches pay the round trips.
shape() {
	local h q="netem delay 10ms rate 100mbit limit 100000"
	if ! ip netns exec "$FED_CLUSTER-sw" tc qdisc add dev auth root $q 2>/dev/null; then
		q="tbf rate 100mbit burst 64kb latency 100ms"
		echo "shaped: no netem in this kernel: 100 Mbit/s (tbf) without the 20 ms RTT"
		ip netns exec "$FED_CLUSTER-sw" tc qdisc add dev auth root $q
	fi
	for h in owner client p1 p2; do
		ip netns exec "$FED_CLUSTER-sw" tc qdisc add dev "$h" root $q
	done
}

run_link() {	# run_link LABEL
	local label=$1 id t0 t tb delta bsize ksize f1 f2 cold
	"$CLUSTER" up 2 2>"$tmp/cluster-$label.log" || { cat "$tmp/cluster-$label.log"; exit 1; }
	eval "$("$CLUSTER" env)"
	mkdir -p "$tmp/site/var/www/html"
	echo "cold start bench page" >"$tmp/site/var/www/html/index.html"
	"$FED" snapshot create --kernel "$CLUSTER_DIR/kernel" --base "$CLUSTER_DIR/base.img" \
		--files "$tmp/site" --setup-files "$entry/debs/apache2" \
		--setup 'dpkg -i --force-unsafe-io /mnt/setup-files/*.deb' \
		--run 'apache2ctl -D FOREGROUND' --service cold.example.org:80 --guest-port 80 \
		--key "$KEY_owner" -o "$tmp/apache.fedsnap" --version 1 --mem 128 --timeout 300 >/dev/null ||
		exit 1
	id=$("$FED" snapshot inspect "$tmp/apache.fedsnap" --json | jq -r .id)
	cp "$tmp/apache.fedsnap" "$MNT_owner/publish/"
	wait_for 30 test -e "$MNT_p1/deltas/$id.fedsnap" || exit 1
	wait_for 30 test -e "$MNT_p2/deltas/$id.fedsnap" || exit 1
	[ "$label" = shaped ] && shape
	delta=$(stat -c %s "$tmp/apache.fedsnap")
	bsize=$(stat -c %s "$CLUSTER_DIR/base.img")
	ksize=$(stat -c %s "$CLUSTER_DIR/kernel")
	f1=$(fetched p1)
	t0=$(now)
	cp "$MNT_p1/deltas/$id.fedsnap" "$MNT_p1/commit/apache.fedsnap"
	t=$(first_200_on p1 "$t0") || { echo "$label: p1 did not serve"; exit 1; }
	f1=$(($(fetched p1) - f1))
	echo "$label: p1 (cold, from the owner): commit -> first 200 $t s; fetched $f1 bytes: delta $delta + kernel $ksize + base $((f1 - delta - ksize)) = $(((f1 - delta - ksize) * 1000 / bsize))/1000 of the $bsize-byte base ($(((f1 - delta - ksize) * 100 / $(du -B1 "$CLUSTER_DIR/base.img" | cut -f1)))% of its $(du -B1 "$CLUSTER_DIR/base.img" | cut -f1) bytes of data)"
	f2=$(fetched p2)
	t0=$(now)
	cp "$MNT_p2/deltas/$id.fedsnap" "$MNT_p2/commit/apache.fedsnap"
	t=$(first_200_on p2 "$t0") || { echo "$label: p2 did not serve"; exit 1; }
	f2=$(($(fetched p2) - f2))
	echo "$label: p2 (cold, owner and p1 hold it): commit -> first 200 $t s; fetched $f2 bytes"
	cold=$t

	# warm: p1 withdraws and commits again; its store holds every chunk
	# it read, so this is the boot and the service alone
	rm "$MNT_p1/commit/apache.fedsnap"
	wait_for 30 sh -c "! grep -q '\"file\": \"apache.fedsnap\"' '$CLUSTER_DIR/p1/vmrunner/status.json'" ||
		{ echo "$label: p1 did not withdraw"; exit 1; }
	f1=$(fetched p1)
	t0=$(now)
	cp "$MNT_p1/deltas/$id.fedsnap" "$MNT_p1/commit/apache.fedsnap"
	t=$(first_200_on p1 "$t0") || { echo "$label: p1 did not serve warm"; exit 1; }
	echo "$label: p1 (warm, all held): commit -> first 200 $t s; fetched $(($(fetched p1) - f1)) bytes; p2's cold start is $(echo "scale=2; $cold / $t" | bc)x it (goal <= 1.5x)"
	echo "$label: delta $delta bytes against the paper's 6300000 ($(echo "scale=2; $delta / 6300000" | bc)x)"

	# download then boot: the whole base and delta over the same link
	mkdir -p "$tmp/dl-src" "$tmp/dl"
	ln -f "$CLUSTER_DIR/base.img" "$tmp/apache.fedsnap" "$tmp/dl-src/"
	on owner setsid python3 -m http.server 8022 --bind "$ADDR_owner" \
		--directory "$tmp/dl-src" >"$tmp/http.log" 2>&1 &
	wait_for 10 on client curl -fs -o /dev/null "http://$ADDR_owner:8022/" || exit 1
	t0=$(now)
	on client curl -fsS -o "$tmp/dl/base.img" "http://$ADDR_owner:8022/base.img" &&
		on client curl -fsS -o "$tmp/dl/apache.fedsnap" "http://$ADDR_owner:8022/apache.fedsnap" || exit 1
	tb=$(now)
	"$FED" snapshot unpack "$tmp/dl/apache.fedsnap" --base "$tmp/dl/base.img" -o "$tmp/dl/apache.cow" >/dev/null || exit 1
	ip -n "$FED_CLUSTER-client" tuntap add dev fed22tap mode tap
	ip -n "$FED_CLUSTER-client" addr add 10.77.22.1/24 dev fed22tap
	ip -n "$FED_CLUSTER-client" link set fed22tap up
	on client setsid bash -c '"$@" 2>&1 </dev/null | cat >"'"$tmp/dl/uml.log"'"' _ \
		timeout -k 5 120 "$UML" mem=64M con=null con0=null,fd:1 root=/dev/ubda rw init=/init \
		"ubd0=$tmp/dl/apache.cow,$tmp/dl/base.img" vec0:transport=tap,ifname=fed22tap \
		fed.ip=10.77.22.2/24 quiet &
	local sid=$!
	wait_for 60 on client curl -fs -o /dev/null --max-time 1 http://10.77.22.2/ || echo "$label: local boot did not serve"
	t=$(now)
	echo "$label: download then boot: curl of $(($(stat -c %s "$tmp/dl/base.img") + delta)) bytes $(echo "$tb - $t0" | bc) s, unpack and boot to first 200 $(echo "$t - $tb" | bc) s; total $(echo "$t - $t0" | bc) s"
	pkill -s "$sid" 2>/dev/null
	wait "$sid" 2>/dev/null
	wait_for 5 sh -c "! pgrep -s $sid >/dev/null"
	rm -rf "$tmp/dl" "$tmp/dl-src"
	"$CLUSTER" down 2>/dev/null
}
run_link loopback
run_link shaped

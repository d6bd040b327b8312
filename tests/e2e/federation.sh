#!/usr/bin/env bash
# The whole federation end to end, on hosts made by scripts/cluster.sh
# (network namespaces on a bridge): an authority, an owner, three peers and
# a client.
#
# The owner publishes a web service and a blog; p1, p2 and p3 commit the
# web service, p2 the blog too.  The client reaches the web service through
# `fed get` and, with plain curl, through `fed proxy` (plain HTTP and
# CONNECT); names the authority does not know still resolve.  Then, in
# turn: a peer host dies and the client still gets the page; the authority
# goes down and the client still gets it from its cached answer while the
# peers keep serving; p2 tampers with its copy of the web page and the
# owner's `fed audit --report` catches it, so lookups no longer list p2 for
# the web service but still do for the blog; the owner publishes version 2,
# the peers follow, the client sees the new page, and version 1 published
# again is refused.
source "$(dirname "$0")/lib.sh"

need_uml
if [ "$(id -u)" != 0 ] || [ ! -e /dev/net/tun ]; then
	echo "ok - # SKIP needs root and /dev/net/tun"
	exit 0
fi

mktempdir d
CLUSTER=$ROOT/scripts/cluster.sh
export FED_CLUSTER=fedt$$ FED_CLUSTER_DIR=$d/cluster BINDIR FED_UML_KERNEL=$UML
# tests/run.sh's PostgreSQL pass: the authority on db1 and db2 (a primary
# and its synchronous standby), failed over near the end
[ "${FED_TEST_STORE:-sqlite}" = postgres ] && export FED_CLUSTER_DB=postgres
on_exit "'$CLUSTER' down"
if ! "$CLUSTER" up 3 2>"$d/cluster.log"; then
	not_ok "the cluster comes up"
	sed 's/^/# /' "$d/cluster.log"
	exit 1
fi
ok "the cluster comes up: authority, owner, 3 peers, client"
eval "$("$CLUSTER" env)"

on() { "$CLUSTER" exec "$@"; }
client() { on client "$@"; }
# fedget URL...: `fed get` on the client host with its own cache
fedget() { client "$FED" get --authority "$AUTH" --cache "$d/cache" "$@"; }
lookup_peers() {	# lookup_peers HOST PORT -> "addr:port" per serving peer
	client curl -fsS --max-time 3 "$AUTH/v1/lookup?host=$1&port=$2" |
		jq -r '.peers[] | "\(.addr):\(.port)"' 2>/dev/null
}
npeers() { [ "$(lookup_peers "$1" "$2" | wc -l)" = "$3" ]; }
page() { cat "$d/$1/var/www/index.html"; }
sha() { sha256sum | cut -c1-64; }

# --- the owner makes and publishes two services ------------------------------
mk() {	# mk NAME SERVICE VERSION TEXT
	mkdir -p "$d/$1/var/www"
	echo "$4 $RANDOM$RANDOM" >"$d/$1/var/www/index.html"
	"$FED" snapshot create --kernel "$CLUSTER_DIR/kernel" \
		--base "$CLUSTER_DIR/base.img" --files "$d/$1" \
		--run 'httpd -f -p 80 -h /var/www' --service "$2" --guest-port 80 \
		--key "$KEY_owner" -o "$d/$1.fedsnap" --version "$3" >/dev/null
}
check "the owner creates the web snapshot" mk web www.example.org:80 1 "web page"
check "and the blog snapshot" mk blog blog.example.org:80 1 "blog page"
check "and version 2 of the web snapshot" mk web2 www.example.org:80 2 "web page v2"
id() { "$FED" snapshot inspect "$d/$1.fedsnap" --json | jq -r .id; }
web_id=$(id web)
blog_id=$(id blog)
web2_id=$(id web2)
check "the owner publishes both" \
	cp "$d/web.fedsnap" "$d/blog.fedsnap" "$MNT_owner/publish/"

commit() {	# commit PEER NAME ID: the peer commits to a snapshot it sees
	local mnt
	mnt=$(eval echo "\$MNT_$1")
	wait_for 30 test -e "$mnt/deltas/$3.fedsnap" &&
		cp "$mnt/deltas/$3.fedsnap" "$mnt/commit/$2.fedsnap"
}
check "p1 commits the web service" commit p1 web "$web_id"
check "p2 commits the web service" commit p2 web "$web_id"
check "p3 commits the web service" commit p3 web "$web_id"
check "p2 commits the blog too" commit p2 blog "$blog_id"
check "three peers serve the web service" wait_for 90 npeers www.example.org 80 3
check "one serves the blog" wait_for 60 npeers blog.example.org 80 1

# --- the client --------------------------------------------------------------
check "fed get fetches the page through the federation" \
	test "$(fedget http://www.example.org/)" = "$(page web)"
check "fed get -o writes the page to a file" \
	sh -c "$(printf '%q ' "$CLUSTER") exec client '$FED' get --authority '$AUTH' \
		--cache '$d/cache' -o '$d/got.html' http://blog.example.org/ &&
		cmp -s '$d/got.html' '$d/blog/var/www/index.html'"
# -o onto a device writes into it: renaming a whole file over /dev/null
# would make it a regular file for every process on the machine
mknod "$d/null" c 1 3
check "fed get -o onto a device (a null device) leaves it the device" \
	sh -c "$(printf '%q ' "$CLUSTER") exec client '$FED' get --authority '$AUTH' \
		--cache '$d/cache' -o '$d/null' http://blog.example.org/ && test -c '$d/null'"
check "fed get fails with a clear line for a missing page" \
	sh -c "! $(printf '%q ' "$CLUSTER") exec client '$FED' get --authority '$AUTH' \
		--cache '$d/cache' http://www.example.org/nope 2>'$d/nope.err' >/dev/null &&
		grep -q 404 '$d/nope.err'"

proxy_port=3128
"$CLUSTER" exec client setsid "$FED" proxy --listen "$ADDR_client:$proxy_port" \
	--authority "$AUTH" --cache "$d/proxy-cache" >>"$d/proxy.log" 2>&1 &
disown
on_exit "pkill -f 'fed proxy --listen $ADDR_client:$proxy_port'"
PROXY=http://$ADDR_client:$proxy_port
check "fed proxy listens" wait_for 10 client curl -s -o /dev/null "$PROXY/"
check "curl -x through fed proxy gets the page" \
	test "$(client curl -fsS --max-time 10 -x "$PROXY" http://www.example.org/)" = "$(page web)"
check "CONNECT through fed proxy reaches the service (curl -p)" \
	test "$(client curl -fsS --max-time 10 -p -x "$PROXY" http://blog.example.org/)" = "$(page blog)"
check "a name the authority does not know goes to the resolver" \
	client curl -fsS --max-time 10 -x "$PROXY" -o /dev/null "$AUTH/healthz"

# --- a peer host dies ----------------------------------------------------------
"$CLUSTER" kill p1 2>/dev/null
ok=0
for i in 1 2 3 4 5 6; do
	[ "$(fedget http://www.example.org/ 2>/dev/null)" = "$(page web)" ] &&
		ok=$((ok + 1))
done
check "with p1 dead, fed get still gets the page, every time ($ok/6)" test $ok = 6
check "and so does curl through the proxy" \
	test "$(client curl -fsS --max-time 20 -x "$PROXY" http://www.example.org/)" = "$(page web)"

# --- the authority goes down -------------------------------------------------
"$CLUSTER" kill auth 2>/dev/null
check "with the authority down, fed get uses its cached answer" \
	test "$(fedget http://www.example.org/ 2>"$d/stale.err")" = "$(page web)"
check "the peers keep serving (p2 directly)" \
	test "$(client curl -fsS --max-time 5 -H 'Host: www.example.org' \
		"http://$(lookup_peers www.example.org 80 2>/dev/null | head -1)/" 2>/dev/null ||
		echo unreachable)" != ""
"$CLUSTER" start auth 2>/dev/null
check "the authority comes back with everything it acknowledged" \
	wait_for 20 npeers www.example.org 80 3

# --- a tampering peer ------------------------------------------------------------
# p2 sends its web service's port to a server of its own (nft DNAT): the
# authority still lists it, the page is not the owner's
p2_web=$(lookup_peers www.example.org 80 | grep "^$ADDR_p2:" | cut -d: -f2)
mkdir -p "$d/fake"
echo "not the owner's page" >"$d/fake/index.html"
"$CLUSTER" exec p2 setsid busybox httpd -f -p "$ADDR_p2:8888" -h "$d/fake" &
disown
on_exit "pkill -f 'busybox httpd -f -p $ADDR_p2:8888'"
on p2 nft -f - <<EOF
table ip tamper {
	chain pre {
		type nat hook prerouting priority dstnat;
		tcp dport $p2_web dnat to $ADDR_p2:8888
	}
}
EOF
tampered() {
	[ "$(client curl -fsS --max-time 3 -H 'Host: www.example.org' \
		"http://$ADDR_p2:$p2_web/")" = "not the owner's page" ]
}
check "p2 now serves another page for the web service" wait_for 10 tampered
want=$(page web | sha)
# the owner audits from its own host, as any client would reach the peers
on owner "$FED" audit www.example.org:80 --path / --expect "$want" \
	--authority "$AUTH" --key "$KEY_owner" --report >"$d/audit.out" 2>&1 &&
	audit_rc=0 || audit_rc=$?
sed 's/^/# /' "$d/audit.out"
check "fed audit exits non-zero" test "$audit_rc" != 0
check "fed audit finds p2's page wrong" grep -q "$ADDR_p2.*MISMATCH" "$d/audit.out"
check "and p3's right" grep -q "$ADDR_p3.*ok" "$d/audit.out"
check "lookups no longer list p2 for the web service" \
	sh -c "! $(printf '%q ' "$CLUSTER") exec client curl -fsS '$AUTH/v1/lookup?host=www.example.org&port=80' | grep -q '$ADDR_p2'"
check "but still list it for the blog" \
	test "$(lookup_peers blog.example.org 80)" != "" -a \
	"$(lookup_peers blog.example.org 80 | cut -d: -f1)" = "$ADDR_p2"
on p2 nft delete table ip tamper

# --- version 2 ------------------------------------------------------------------
check "the owner publishes version 2" cp "$d/web2.fedsnap" "$MNT_owner/publish/"
v2_page() { [ "$(fedget http://www.example.org/ 2>/dev/null)" = "$(page web2)" ]; }
if wait_for 90 v2_page; then
	ok "the peers follow it and the client sees the new page"
else
	not_ok "the peers follow it and the client sees the new page"
	# what a reader of the CI log needs to tell why
	echo "# fed get answered: $(fedget http://www.example.org/ 2>&1 | head -c 200)"
	echo "# lookup: $(client curl -sS "$AUTH/v1/lookup?host=www.example.org&port=80" | head -c 600)"
	for h in p2 p3; do
		echo "# $h vms: $(jq -c '[.vms[] | {file, state, snapshot: .snapshot[:12]}]' "$CLUSTER_DIR/$h/vmrunner/status.json" 2>&1)"
		tail -n 8 "$CLUSTER_DIR/$h/vmrunner.log" "$CLUSTER_DIR/$h/fedfs.log" 2>&1 | cut -c1-300 | sed "s/^/# $h: /"
	done
fi
check "p3 runs version 2" \
	wait_for 30 sh -c "jq -e '.vms[] | select(.snapshot==\"$web2_id\" and .state==\"up\")' '$CLUSTER_DIR/p3/vmrunner/status.json' >/dev/null"
check "version 1 published again is refused" \
	sh -c "! cp '$d/web.fedsnap' '$MNT_owner/publish/again.fedsnap' 2>/dev/null"
check "and committed again by a peer is refused" \
	sh -c "! cp '$MNT_p3/deltas/$web_id.fedsnap' '$MNT_p3/commit/old.fedsnap' 2>/dev/null"

# --- PostgreSQL: the primary's host dies, the standby is promoted ------------
if [ "${FED_CLUSTER_DB:-sqlite}" = postgres ]; then
	"$CLUSTER" kill db1 2>&1 | sed "s/^/# /"
	if wait_for 20 v2_page; then
		ok "with db1 dead, the client still gets the page"
	else
		not_ok "with db1 dead, the client still gets the page"
		echo "# fed get answered: $(fedget http://www.example.org/ 2>&1 | head -c 300)"
		echo "# lookup: $(client curl -sS -m 10 "$AUTH/v1/lookup?host=www.example.org&port=80" 2>&1 | head -c 600)"
		tail -n 5 "$CLUSTER_DIR/auth/authority.log" | cut -c1-300 | sed 's/^/# auth: /'
	fi
	check "and a lookup is answered (from the standby)" \
		wait_for 10 sh -c "'$CLUSTER' exec client curl -fsS -m 5 '$AUTH/v1/lookup?host=www.example.org&port=80' | grep -q peers"
	"$CLUSTER" promote db2 2>&1 | sed "s/^/# /"
	echo "kernel after failover $RANDOM$RANDOM" >"$d/k-after"
	trust_after() {
		client "$FED" trust add "$d/k-after" --kind kernel --authority "$AUTH" \
			--key "$CLUSTER_DIR/admin.key" >/dev/null 2>&1
	}
	check "after db2's promotion, the authority takes writes again" \
		wait_for 30 trust_after
fi

# --- a crash, then down -------------------------------------------------------
# every process of every host killed at once leaves stale FUSE mounts, taps
# and namespaces behind: down must still remove everything
for ns in $(ip netns list | awk '{print $1}' | grep "^$FED_CLUSTER-"); do
	ip netns pids "$ns" | xargs -r kill -9
done
"$CLUSTER" down 2>&1 | sed "s/^/# /"
check "after a crash, down leaves no namespace" 	sh -c "! ip netns list | grep -q '^$FED_CLUSTER-'"
check "no mount" sh -c "! grep -q ' $CLUSTER_DIR' /proc/mounts"
check "and no directory" test ! -e "$CLUSTER_DIR"
exit 0

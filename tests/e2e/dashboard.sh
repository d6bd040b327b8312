#!/usr/bin/env bash
# The authority's dashboard in real headless Chromium, in the demo cluster
# (scripts/cluster.sh up 2): the owner's web service and both peers serving
# it are shown up; p1 killed turns to down within the peer ttl (6 s here,
# given to the cluster's authority through its configuration file); an
# owner-supplied text with <script> (a report's reason) shows as text and
# runs nothing.  Screenshots go to the directory printed below, kept after
# the test.
source "$(dirname "$0")/lib.sh"

need_uml
mktempdir d
shots=${FED_TEST_ARTIFACTS:-$ROOT/${BUILD:-build}/test-artifacts}/dashboard
rm -rf "$shots" && mkdir -p "$shots"
echo "# screenshots in $shots"
TTL=6
mkdir -p "$d/conf"
echo "peer-ttl = $TTL" >"$d/conf/fed-authority.conf"
CLUSTER=$ROOT/scripts/cluster.sh
export FED_CLUSTER=fed23d FED_CLUSTER_DIR=$d/cluster BINDIR FED_UML_KERNEL=$UML
export FED_CONFIG_DIR=$d/conf
on_exit "'$CLUSTER' down"
if ! "$CLUSTER" up 2 2>"$d/cluster.log"; then
	not_ok "the cluster comes up"
	sed 's/^/# /' "$d/cluster.log"
	exit 1
fi
ok "the cluster comes up: authority (peer-ttl from its file), owner, 2 peers"
eval "$("$CLUSTER" env)"
unset FED_CONFIG_DIR

mkdir -p "$d/web/var/www"
echo "web page $RANDOM" >"$d/web/var/www/index.html"
"$FED" snapshot create --kernel "$CLUSTER_DIR/kernel" --base "$CLUSTER_DIR/base.img" \
	--files "$d/web" --run 'httpd -f -p 80 -h /var/www' --service www.example.org:80 \
	--guest-port 80 --key "$KEY_owner" -o "$d/web.fedsnap" --version 1 >/dev/null
id=$("$FED" snapshot inspect "$d/web.fedsnap" --json | jq -r .id)
cp "$d/web.fedsnap" "$MNT_owner/publish/"
for p in p1 p2; do
	mnt=$(eval echo "\$MNT_$p")
	wait_for 30 test -e "$mnt/deltas/$id.fedsnap" &&
		cp "$mnt/deltas/$id.fedsnap" "$mnt/commit/web.fedsnap"
done
nup() { "$CLUSTER" exec client curl -fsS --max-time 3 \
	"$AUTH/v1/services/www.example.org:80/peers" | jq '[.peers[] | select(.up)] | length'; }
both_up() { [ "$(nup)" = 2 ]; }	# polled: asks again each time
check "both peers serve the web service (API)" wait_for 120 both_up

browse() { "$CLUSTER" exec client /usr/bin/python3 "$ROOT/tests/e2e/dashboard_browser.py" \
	"$AUTH/" "$shots" "$@"; }
out=$(browse wait-service www.example.org:80 2 2>&1); rc=$?
echo "# $out" | tail -n 1
check "the dashboard shows the service with both peers up" test $rc = 0

out=$("$CLUSTER" exec client /usr/bin/python3 "$ROOT/tests/e2e/dashboard_browser.py" \
	"http://$ADDR_p2:7000/" "$shots" peer-runs www.example.org:80 2>&1); rc=$?
echo "# $out" | tail -n 1
check "p2's object server page shows what it runs and serves" test $rc = 0
check "p2's /status is its .status" test "$("$CLUSTER" exec client curl -fsS \
	"http://$ADDR_p2:7000/status" | jq -r .peer)" = "$("$FED" pubkey "$KEY_p2")"

p1=$("$FED" pubkey "$KEY_p1")
"$CLUSTER" kill p1 2>/dev/null
out=$(browse wait-down www.example.org:80 "$p1" $((TTL * 2 + 4)) 2>&1); rc=$?
echo "# $out" | tail -n 1
check "p1 killed turns to down on the page within its ttl (+ sweep and refresh)" test $rc = 0

evil='<script>window.fed23_pwned=true</script><img src=x onerror="window.fed23_pwned=true">'
"$CLUSTER" exec client "$FED" report www.example.org:80 "$p1" --reason "$evil" \
	--authority "$AUTH" --key "$KEY_owner" >/dev/null
out=$(browse text-shown "$evil" 2>&1); rc=$?
echo "# $out" | tail -n 1
check "an owner's text with <script> shows as text and runs nothing" test $rc = 0
check "screenshots saved" test -s "$shots/wait-service.png" -a -s "$shots/text-shown.png"

#!/usr/bin/env bash
# Clients that know several authorities (issue 20 item 4), on loopback with
# a real fed-authority on SQLite: the first URL in --authority is a port
# nobody listens on, or one that accepts and never answers; each client
# goes on with the next and gets its answer: fed lookup, fed trust (a
# signed request), fed get and fed proxy (which ask the authority before
# reaching a name it does not know directly), and fedfs, whose
# registration with the authority is a signed announce.  A stalled first
# URL costs at most the client's timeout (HTTP_TIMEOUT_MS, 30 s).
source "$(dirname "$0")/lib.sh"

mktempdir d
start_authority "$d/auth" || { not_ok "the authority starts"; exit 1; }
GOOD=$AUTH
DEAD=http://127.0.0.1:$(free_port)
stall_port=$(free_port)
# accepts connections (the kernel's backlog) and never reads or answers
python3 -c 'import socket,sys,time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(64); time.sleep(3600)' \
	"$stall_port" &
stall_pid=$!
on_exit "kill $stall_pid"
STALL=http://127.0.0.1:$stall_port
listening() { ss -Hltn "sport = :$1" | grep -q .; }
wait_for 10 listening "$stall_port" || not_ok "the stalling listener starts"
LIST=$DEAD,$GOOD

fails() { ! "$@"; }
check "a malformed list is refused with a reason" \
	bash -c "'$FED' lookup a.example:80 --authority '$GOOD,,$DEAD' 2>&1 | grep -q 'element 2 is empty'"
check "a non-http URL in the list is refused" \
	fails "$FED" lookup a.example:80 --authority "$GOOD,ftp://x" 2>/dev/null
check "the dead authority alone gives no answer" \
	fails "$FED" lookup localhost:80 --authority "$DEAD" 2>/dev/null
check "fed lookup with a dead first URL asks the next" \
	bash -c "'$FED' lookup localhost:80 --authority '$LIST' 2>/dev/null | grep -q 'the authority does not know'"
check "and through \$FED_AUTHORITY too" \
	bash -c "FED_AUTHORITY='$LIST' '$FED' lookup localhost:80 2>/dev/null | grep -q 'the authority does not know'"
echo kernel-bytes-$RANDOM$RANDOM >"$d/kernel"
check "a signed request (fed trust add) goes through the next" \
	"$FED" trust add "$d/kernel" --kind kernel --authority "$LIST" --key "$ADMIN_KEY"
ksum=$(sha256sum <"$d/kernel" | cut -c1-64)
check "and the authority has it" \
	bash -c "curl -fsS '$GOOD/v1/trusted' | grep -q $ksum"

start=$SECONDS
out=$("$FED" lookup localhost:80 --authority "$STALL,$GOOD" 2>"$d/stall.err")
took=$((SECONDS - start))
check "a stalled first URL: fed lookup gets the next one's answer" \
	grep -q 'the authority does not know' <<<"$out"
check "within the client's timeout (took ${took} s, limit 30 + 5)" test "$took" -le 35
check "it says which authority it gave up on" grep -q "authority $STALL" "$d/stall.err"

# a plain web server the authority does not know: fed get and fed proxy
# reach it directly once an authority has said so
mkdir -p "$d/www"
echo "page $RANDOM$RANDOM" >"$d/www/index.html"
web_port=$(free_port)
python3 -m http.server "$web_port" --bind 127.0.0.1 --directory "$d/www" \
	>/dev/null 2>&1 &
web_pid=$!
on_exit "kill $web_pid"
wait_for 10 listening "$web_port" || not_ok "the web server starts"
URL=http://127.0.0.1:$web_port/index.html
# with no authority answering, fed get still reaches the name by DNS, but
# says so: the warning tells "asked the next authority" from "asked none"
"$FED" get "$URL" --authority "$DEAD" --cache "$d/cache0" -o "$d/got0" 2>"$d/get0.err"
check "fed get with only a dead authority says it is unreachable" \
	grep -q 'authority unreachable' "$d/get0.err"
check "fed get with a dead first URL fetches the page" \
	"$FED" get "$URL" --authority "$LIST" --cache "$d/cache1" -o "$d/got1" 2>"$d/get1.err"
check "the page is the server's" cmp -s "$d/got1" "$d/www/index.html"
check "an authority answered it (no 'unreachable')" \
	fails grep -q 'authority unreachable' "$d/get1.err"
check "it tried the dead one first" grep -q "authority $DEAD" "$d/get1.err"

proxy_port=$(free_port)
"$FED" proxy --listen "127.0.0.1:$proxy_port" --authority "$LIST" \
	--cache "$d/cache2" 2>"$d/proxy.log" &
proxy_pid=$!
on_exit "kill $proxy_pid"
wait_for 10 listening "$proxy_port" || not_ok "fed proxy starts"
check "fed proxy with a dead first URL serves the page" \
	bash -c "curl -fsS --max-time 20 -x 127.0.0.1:$proxy_port '$URL' | cmp -s - '$d/www/index.html'"
check "the proxy's authority answered (no 'unreachable')" \
	fails grep -q 'authority unreachable' "$d/proxy.log"
check "after trying the dead one" grep -q "authority $DEAD" "$d/proxy.log"

if [ -e /dev/fuse ] && command -v fusermount3 >/dev/null; then
	AUTH=$LIST
	check "fedfs with a dead first URL registers through the next" \
		start_fedfs p1 127.0.0.1 "$d"
	AUTH=$GOOD
	check "fedfs's .status names the list" \
		bash -c "jq -r .authority.url '$MNT_p1/.status' | grep -qF '$LIST'"
else
	ok "fedfs # SKIP needs /dev/fuse"
fi

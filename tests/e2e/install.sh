#!/usr/bin/env bash
# `make install DESTDIR=...` then `make uninstall`: the installed binaries
# run, the files land where the FHS says, uninstall leaves no file behind,
# and each binary links only its own room's libraries (fedfs without the
# authority's sqlite, the authority without FUSE).
source "$(dirname "$0")/lib.sh"

mktempdir dir
dest=$dir/root23
mk() {
	make -s -C "$ROOT" BUILD="${BUILD:-build}" BINDIR="$BINDIR" DESTDIR="$dest" "$@" >/dev/null
}

check "make install DESTDIR= succeeds" mk install
bash "$ROOT/scripts/mkman.sh" "$BINDIR" "$dir/man" >/dev/null
check "man/ is what the binaries' --help say (make man)" \
	diff -r "$ROOT/man" "$dir/man"
check "a man page for each binary and fed subcommand" \
	test "$(ls "$ROOT"/man/*.[1-8] | wc -l)" = $((5 + $("$FED" --help | grep -c '^  [a-z]')))
check "the pages render (man -l)" \
	sh -c "for m in '$ROOT'/man/*; do MANWIDTH=80 man -l \"\$m\" 2>&1 >/dev/null | grep . && exit 1; done; true"
for b in fed fedfs fed-authority fed-vmrunner fed-netmap; do
	check "installed $b runs (--help)" \
		sh -c "'$dest/usr/local/bin/$b' --help >/dev/null 2>&1"
done
check "scripts and the kernel build go to share/fed" \
	test -x "$dest/usr/local/share/fed/scripts/mkumlkernel.sh" \
	-a -f "$dest/usr/local/share/fed/kernel/uml/fed.config"
check "nothing goes to lib/fed (the kernels' place)" \
	test ! -e "$dest/usr/local/lib/fed"
for m in "$ROOT"/man/*.[1-8]; do
	[ -e "$m" ] || continue
	s=${m##*.}
	check "man page $(basename "$m") installed" \
		test -f "$dest/usr/local/share/man/man$s/$(basename "$m")"
done
for c in "$ROOT"/etc/*.conf; do
	[ -e "$c" ] || continue
	check "example $(basename "$c") in /etc/fed" \
		test -f "$dest/etc/fed/$(basename "$c").example"
done
for u in "$ROOT"/systemd/*.service; do
	[ -e "$u" ] || continue
	check "unit $(basename "$u") installed" \
		test -f "$dest/usr/local/lib/systemd/system/$(basename "$u")"
done

check "fedfs links no sqlite" sh -c "! ldd '$dest/usr/local/bin/fedfs' | grep -q sqlite"
check "fedfs holds no authority code" \
	sh -c "! nm '$dest/usr/local/bin/fedfs' | grep -qE ' T (authstore_|api_)'"
check "fed-authority holds no fedfs code" \
	sh -c "! nm '$dest/usr/local/bin/fed-authority' | grep -qE ' T objsrv_'"
check "fed-authority links no FUSE" \
	sh -c "! ldd '$dest/usr/local/bin/fed-authority' | grep -q fuse"
check "fed-netmap links no FUSE, sqlite, microhttpd" \
	sh -c "! ldd '$dest/usr/local/bin/fed-netmap' | grep -qE 'fuse|sqlite|microhttpd'"

check "make uninstall succeeds" mk uninstall
left=$(find "$dest" -not -type d)
check "uninstall leaves no file behind" test -z "$left"
[ -z "$left" ] || echo "# left: $left"
check "uninstall leaves no fed directory behind" \
	test -z "$(find "$dest" -name '*fed*')"

# a second uninstall on nothing is harmless; PREFIX moves everything
check "uninstall twice is harmless" mk uninstall
check "PREFIX=/usr puts binaries in /usr/bin" \
	sh -c "make -s -C '$ROOT' BUILD='${BUILD:-build}' BINDIR='$BINDIR' DESTDIR='$dest' PREFIX=/usr install >/dev/null && test -x '$dest/usr/bin/fed'"
mk PREFIX=/usr uninstall
check "PREFIX=/usr uninstall leaves no file" test -z "$(find "$dest" -not -type d)"

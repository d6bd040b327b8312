#!/usr/bin/env bash
# The .fedsnap round trip through real UML boots: boot fed's UML kernel over
# a base from scripts/mkbase.sh with a fresh COW and have the guest copy the
# owner's files in from an import disk;
# pack the COW into a signed delta; verify it; unpack it into a new COW over
# the base; boot that and see the file.  Also: the delta is small next to
# the base, a damaged snapshot is refused by `fed snapshot verify`, and
# unpacking over another base is refused.
source "$(dirname "$0")/lib.sh"

need_uml
mktempdir dir

# uml_boot LOG UBD0 WORDS...: boot, wait for power-off (bounded), exit 0 iff
# the kernel exited 0.  timeout gives UML its own process group and kills
# all of it if the guest hangs.
uml_boot() {
	local log=$1 ubd=$2
	shift 2
	timeout -k 5 60 "$UML" "ubd0=$ubd" root=/dev/ubda rw init=/init \
		mem=64M con=null con0=null,fd:1 quiet "$@" \
		2>&1 | cat >"$log"
	return "${PIPESTATUS[0]}"
}

scripts=$ROOT/scripts
check "mkbase.sh builds the base" \
	bash "$scripts/mkbase.sh" "$dir/base.img" >/dev/null
check "fed keygen makes the owner's key" \
	"$FED" keygen -o "$dir/owner.key" >/dev/null

token=token-$RANDOM$RANDOM$RANDOM
files=$dir/import/files
mkdir -p "$files/etc" "$files/var/www"
echo "$token" >"$files/etc/motd"
head -c 200000 /dev/urandom | base64 >"$files/var/www/index.html"
import_disk "$dir/import" "$dir/import.img"
base_sum=$(sha256sum <"$dir/base.img" | cut -c1-64)
kernel_sum=$(sha256sum <"$UML" | cut -c1-64)

uml_boot "$dir/import.log" "$dir/web.cow,$dir/base.img" "ubd1r=$dir/import.img" \
	fed.import=/dev/ubdb
check "the guest imports the owner's files and powers off" \
	grep -q 'fed-init: imported' "$dir/import.log"

check "fed snapshot pack turns the COW into a signed delta" \
	"$FED" snapshot pack --base "$dir/base.img" --cow "$dir/web.cow" \
	--service www.example.org:80 --guest-port 80 --kernel-hash "$kernel_sum" \
	--key "$dir/owner.key" -o "$dir/web.fedsnap" --version 1
check "fed snapshot verify accepts it" \
	"$FED" snapshot verify "$dir/web.fedsnap"

delta_size=$(stat -c %s "$dir/web.fedsnap")
base_size=$(stat -c %s "$dir/base.img")
echo "# delta $delta_size bytes for a $base_size-byte base ($((delta_size * 1000 / base_size))/1000)"
check "the delta is small next to the base (< 2%)" \
	test $((delta_size * 50)) -lt "$base_size"

inspect_base=$("$FED" snapshot inspect "$dir/web.fedsnap" --json |
	sed -E 's/.*"base":"([0-9a-f]{64})".*/\1/')
check "the manifest names the base by its SHA-256" \
	test "$inspect_base" = "$base_sum"

check "fed snapshot unpack rebuilds a COW over the base" \
	"$FED" snapshot unpack "$dir/web.fedsnap" --base "$dir/base.img" \
	-o "$dir/again.cow"

uml_boot "$dir/probe.log" "$dir/again.cow,$dir/base.img" fed.probe=/etc/motd
check "the unpacked COW boots and holds the guest's file" \
	grep -qx "$token" "$dir/probe.log"
page_sum=$(sha256sum <"$files/var/www/index.html" | cut -c1-64)
uml_boot "$dir/probe2.log" "$dir/again.cow,$dir/base.img" \
	fed.probe=/var/www/index.html
check "a 270 KB file survives the round trip byte for byte" \
	grep -q "fed-init: probe sha256 $page_sum /var/www/index.html" \
	"$dir/probe2.log"

uml_boot "$dir/pristine.log" "$dir/fresh.cow,$dir/base.img" fed.probe=/etc/motd
check "the base itself is untouched" \
	test "$(sha256sum <"$dir/base.img" | cut -c1-64)" = "$base_sum"
check "a fresh COW over the base does not have the file" \
	grep -q 'fed-init: probe missing /etc/motd' "$dir/pristine.log"

# damage: one byte of the payload
cp "$dir/web.fedsnap" "$dir/bad.fedsnap"
flip_byte "$dir/bad.fedsnap" $(($(stat -c %s "$dir/bad.fedsnap") - 10))
if "$FED" snapshot verify "$dir/bad.fedsnap" 2>"$dir/verify.err"; then
	not_ok "a damaged snapshot is refused"
else
	check "a damaged snapshot is refused, naming the chunk" \
		grep -q 'hash mismatch' "$dir/verify.err"
fi
rm -f "$dir/bad.cow"
if "$FED" snapshot unpack "$dir/bad.fedsnap" --base "$dir/base.img" \
	-o "$dir/bad.cow" 2>/dev/null; then
	not_ok "a damaged snapshot does not unpack"
else
	check "a damaged snapshot does not unpack and leaves no COW" \
		test ! -e "$dir/bad.cow"
fi

bash "$scripts/mkbase.sh" "$dir/other.img" 32 >/dev/null
if "$FED" snapshot unpack "$dir/web.fedsnap" --base "$dir/other.img" \
	-o "$dir/other.cow" 2>"$dir/other.err"; then
	not_ok "unpacking over another base is refused"
else
	check "unpacking over another base is refused" \
		grep -q 'another base' "$dir/other.err"
fi
no_uml_left() { ! pgrep -f "$UML.*ubd0=$dir" >/dev/null; }
check "no UML process is left" no_uml_left

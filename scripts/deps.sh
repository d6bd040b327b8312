#!/usr/bin/env bash
# Install everything fed's build, tests, benchmarks and demo need: the
# Debian packages, then the kernels the machines boot, built or taken from
# FED_KERNEL_CACHE (default /var/cache/fed) and installed in FED_LIBDIR
# (default /usr/local/lib/fed):
#
#   linux.uml     fed's UML kernel (scripts/mkumlkernel.sh; ~6 min cold)
#   qkernel.bin   the QEMU kernel object (scripts/mkqemukernel.sh)
#
# and the Debian base with the .debs the tests install into it, built or
# taken from FED_KERNEL_CACHE/debian (scripts/mkbase.sh --debian-cache).
#
# Every download happens here, never in a test.  Idempotent: packages
# already installed are left alone, `apt-get update` runs only when
# something is missing, and a kernel whose inputs did not change is copied
# from the cache.
set -euo pipefail
cd "$(dirname "$0")/.."
LIBDIR=${FED_LIBDIR:-/usr/local/lib/fed}

packages=(
	# build
	build-essential pkg-config clang libclang-rt-14-dev
	# the product's libraries
	libfuse3-dev fuse3 libgcrypt20-dev libmicrohttpd-dev zlib1g-dev
	libcurl4-openssl-dev libjansson-dev libsqlite3-dev
	# the VM jail's system-call filter (src/machine/seccomp.c)
	libseccomp-dev
	# tests
	libcriterion-dev curl jq
	# e2e/authority_failover.sh: a listener that never answers, a web server
	python3
	# e2e/systemd.sh: systemd-analyze verify/security on the units
	systemd
	# e2e/install.sh renders the man pages (man -l)
	man-db
	# e2e/dashboard.sh: the authority's page in real headless Chromium
	chromium chromium-driver python3-selenium
	# building fed's UML kernel from Debian's source (scripts/mkumlkernel.sh)
	flex bison bc xz-utils patch
	# runtime: base image, import disks, networking
	busybox-static e2fsprogs iproute2 util-linux
	# bench/uml.sh boots Debian's own UML kernel beside fed's
	user-mode-linux
	# e2e/federation.sh: a tampering peer redirects its port (nft DNAT);
	# e2e/fedfs_net.sh and bench/fedfs_net.sh drop packets with it
	nftables
	# running-state snapshots: QEMU (TCG), and cpio for the initramfs that
	# scripts/mkqemukernel.sh packs beside Debian's kernel
	qemu-system-x86 cpio
	# checks and benchmarks
	cppcheck wrk bc
	# bench/fedsnap.sh: SHA-256 with the CPU's SHA extensions, as libgcrypt uses
	openssl
	# bench/netmap.sh: userland relay and throughput baselines
	socat iperf3
	# the Debian base (scripts/mkbase.sh --debian)
	mmdebstrap
	# the authority on PostgreSQL (--db postgresql://...): libpq, and the
	# server the tests and scripts/cluster.sh start in directories of their
	# own (tests/lib/pg.sh)
	libpq-dev postgresql-15
	# e2e/authority_patroni.sh: the production layout of docs/authority-ha.md,
	# Patroni promoting the standby, with etcd (each run in a test directory)
	patroni etcd-server
)

missing=()
for p in "${packages[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done

if [ "$(id -u)" -ne 0 ]; then
	sudo=sudo
else
	sudo=
fi
if [ ${#missing[@]} -eq 0 ]; then
	echo "deps: all ${#packages[@]} packages present"
else
	echo "deps: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# the server package would make and start a machine-wide cluster on
	# port 5432; fed's tests and demo run their own, so none is made
	$sudo mkdir -p /etc/postgresql-common
	[ -f /etc/postgresql-common/createcluster.conf ] ||
		echo "create_main_cluster = false" |
		$sudo tee /etc/postgresql-common/createcluster.conf >/dev/null
	$sudo apt-get update -qq
	$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
	# In a container, a package's maintainer script can leave /dev/null a
	# regular file (seen on these machines); every test writes to it.
	if [ ! -c /dev/null ]; then
		echo "deps: /dev/null was made a regular file; making it the device again"
		$sudo rm -f /dev/null
		$sudo mknod -m 666 /dev/null c 1 3
	fi
fi

# The kernels, each printed with its SHA-256.
$sudo mkdir -p "$LIBDIR"
echo "deps: fed's UML kernel $($sudo bash scripts/mkumlkernel.sh "$LIBDIR/linux.uml")"
echo "deps: QEMU kernel object $($sudo bash scripts/mkqemukernel.sh "$LIBDIR/qkernel.bin")"
echo "deps: Debian base and .debs in $($sudo bash scripts/mkbase.sh --debian-cache)"

#!/usr/bin/env bash
# Install every Debian package that fed's build, tests, benchmarks and demo need.
# Idempotent: packages already installed are left alone, and `apt-get update`
# runs only when something is missing.
set -euo pipefail

packages=(
	# build
	build-essential pkg-config clang libclang-rt-14-dev
	# the product's libraries
	libfuse3-dev fuse3 libgcrypt20-dev libmicrohttpd-dev zlib1g-dev
	libcurl4-openssl-dev libjansson-dev libsqlite3-dev
	# tests
	libcriterion-dev curl jq
	# runtime: UML kernel, base image, networking
	user-mode-linux busybox-static e2fsprogs iproute2 util-linux
	# e2e/federation.sh: a tampering peer redirects its port (nft DNAT)
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
)

missing=()
for p in "${packages[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done

if [ ${#missing[@]} -eq 0 ]; then
	echo "deps: all ${#packages[@]} packages present"
	exit 0
fi

echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if [ "$(id -u)" -ne 0 ]; then
	sudo=sudo
else
	sudo=
fi
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"

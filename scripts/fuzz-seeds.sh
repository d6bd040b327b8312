#!/usr/bin/env bash
# Regenerate the fuzz targets' generated seeds in fuzz/seeds/<target>/.
#
#   scripts/fuzz-seeds.sh
#
# Compiles fuzz/gen_seeds.c with the common sources (the same set `make
# fuzz` links) and runs it: synthetic UML COW files over a 64 KiB zero base,
# packed, signed with a fixed test key.  Deterministic: a second run writes
# the same bytes.  Regression inputs (fuzz/seeds/*/regress-*) are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
# the Makefile's PKGS: other common sources may need any of them
PKGS="fuse3 libgcrypt libmicrohttpd zlib libcurl jansson sqlite3"
out=build/fuzz/gen_seeds
mkdir -p build/fuzz fuzz/seeds
# shellcheck disable=SC2046,SC2086  # word splitting wanted
${CC:-cc} -std=c11 -O1 -g -Wall -Wextra -Werror -Isrc -D_GNU_SOURCE -DFUSE_USE_VERSION=314 \
	$(pkg-config --cflags $PKGS) -o "$out" fuzz/gen_seeds.c \
	src/common/*.c $(pkg-config --libs $PKGS) -pthread
"$out" fuzz/seeds

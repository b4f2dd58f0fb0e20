#!/bin/sh
# Writes seed images for fuzz_fsbridge_open into DIR (small ext4 images of
# 1 KiB blocks, with and without a journal, holding a file, a symlink and a
# directory). Usage: make_seeds.sh DIR; then
#   fuzz_fsbridge_open DIR -max_total_time=60 -max_len=2200000
set -eu
OUT=$1
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
mkdir -p "$OUT" "$T/src/d"
echo hi > "$T/src/a"; ln -s a "$T/src/l"; echo x > "$T/src/d/b"
mke2fs -q -F -t ext4 -b 1024 -N 32 -O ^has_journal -d "$T/src" "$OUT/seed1.img" 256K
mke2fs -q -F -t ext4 -b 1024 -N 64 -d "$T/src" "$OUT/seed2.img" 2M

#!/bin/sh
# Writes the seed images for fuzz_fsbridge_open into DIR (default: the
# committed fuzz/fsbridge/seeds/): a small ext4 image of 1 KiB blocks
# holding a file, a symlink and a directory, and the
# crafted hostile cases of tests/lib/hostile_images.py (names "../x", "a/b",
# "." and with NUL or newline, a duplicate name, a directory loop). Trailing
# zero bytes are cut (the fuzzer pads the input with zeros to 64 KiB).
# Usage: make_seeds.sh [DIR]; then
#   fuzz_fsbridge_open DIR -max_total_time=60 -max_len=4200000
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-$HERE/seeds}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
mkdir -p "$OUT" "$T/src/d"
echo hi > "$T/src/a"; ln -s a "$T/src/l"; echo x > "$T/src/d/b"
# No journal seed: the smallest journal (1024 blocks) alone is 1 MiB.
truncate -s 64K "$T/plain.img"
mke2fs -q -F -t ext4 -b 1024 -N 16 -O ^has_journal,^resize_inode -d "$T/src" "$T/plain.img" 64K
for c in dotdot slash_dir nul dot_dir newline duplicate loop; do
  python3 "$HERE/../../tests/lib/hostile_images.py" "$T/$c.img" "$c"
done
for f in "$T"/*.img; do
  python3 -c 'import sys; d=open(sys.argv[1],"rb").read().rstrip(b"\0"); open(sys.argv[2],"wb").write(d)' \
    "$f" "$OUT/$(basename "$f" .img)"
done

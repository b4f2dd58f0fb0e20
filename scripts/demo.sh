#!/bin/bash
# The main job: installs what stack needs, builds it, and runs the demo.
# Today's demo shows the block-device layer on a sparse file; it grows into
# the encrypted golden-image pipeline as the layers land.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
"$ROOT/scripts/setup.sh"
"$ROOT/scripts/build.sh" >/dev/null
STACK="$ROOT/build/cli/stack"
WORK=${STACK_DEMO_DIR:-$ROOT/out/demo}
rm -rf "$WORK"; mkdir -p "$WORK"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

if [ -x "$ROOT/scripts/demo-golden.sh" ] && "$STACK" --help | grep -q '^  build'; then
  exec "$ROOT/scripts/demo-golden.sh" "$WORK"
fi

step "stack $("$STACK" --version | cut -d' ' -f2): a sparse 1 GiB file-backed block device"
"$STACK" blockdev create "$WORK/disk.img" --size 1G
step "write 3 scattered runs of data (dd), then ask the device what it holds"
dd if=/dev/urandom of="$WORK/disk.img" bs=1M count=4 conv=notrunc status=none
dd if=/dev/urandom of="$WORK/disk.img" bs=1M seek=300 count=2 conv=notrunc status=none
dd if=/dev/urandom of="$WORK/disk.img" bs=4k seek=200000 count=1 conv=notrunc status=none
"$STACK" blockdev map "$WORK/disk.img"
"$STACK" blockdev info "$WORK/disk.img"
step "discard the middle run: space is returned, the range reads zeros"
"$STACK" blockdev discard "$WORK/disk.img" --offset 300M --length 2M
"$STACK" --json blockdev info "$WORK/disk.img"
du -h --apparent-size "$WORK/disk.img"; du -h "$WORK/disk.img"

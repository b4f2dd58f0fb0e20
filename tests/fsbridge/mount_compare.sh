#!/bin/sh
# Builds an image from a tree with every file type, mounts it read-only
# through the kernel (loop) and compares it with the source: the kernel is
# the reader of record. Skips (77) with the reason when mounting is not
# permitted here.
set -eu
TOOL=$1
T=$(mktemp -d "${STACK_TEST_TMP:-/tmp}/fsmount.XXXXXX")
MNT=$T/mnt
cleanup() { mountpoint -q "$MNT" 2>/dev/null && umount "$MNT"; rm -rf "$T"; }
trap cleanup EXIT
mkdir -p "$T/src/d/e" "$MNT"
printf 'hello\n' > "$T/src/a.txt"
head -c 300000 /dev/urandom > "$T/src/d/blob"
truncate -s 20M "$T/src/sparse"; printf 'x' | dd of="$T/src/sparse" bs=1 seek=10000000 conv=notrunc status=none
ln "$T/src/a.txt" "$T/src/d/hard"
ln -s a.txt "$T/src/link"
ln -s "$(printf '%0300d' 0)" "$T/src/d/slowlink"
mkfifo "$T/src/fifo"
i=0; while [ $i -lt 3000 ]; do : > "$T/src/d/e/f$i"; i=$((i+1)); done
# The xattr check needs the source filesystem to take user xattrs; where it
# cannot, the check is reported as not done (never silently passed).
XATTR=yes
setfattr -n user.k -v v "$T/src/a.txt" 2>"$T/xerr" || { XATTR="no ($(cat "$T/xerr"))"; }
touch -d '2020-01-02 03:04:05.123456789' "$T/src/a.txt"
"$TOOL" mkfs "$T/img" 64 "$T/src"
e2fsck -fn "$T/img" >/dev/null
if [ "$(id -u)" != 0 ]; then echo "SKIP: mount -o loop needs root"; exit 77; fi
if ! mount -o loop,ro "$T/img" "$MNT" 2>"$T/err"; then
  echo "SKIP: mount -o loop,ro not permitted here: $(cat "$T/err")"; exit 77
fi
D="diff -r --no-dereference -x lost+found -x fifo"
$D "$T/src" "$MNT" >/dev/null 2>&1 || { $D "$T/src" "$MNT" | head; exit 1; }
[ "$(stat -c '%h %a %y' "$MNT/a.txt")" = "$(stat -c '%h %a %y' "$T/src/a.txt")" ] || { echo "attrs differ"; exit 1; }
if [ "$XATTR" = yes ]; then
  [ "$(getfattr --only-values -n user.k "$MNT/a.txt")" = "v" ] || { echo "xattr differs"; exit 1; }
else
  echo "note: xattr check not done: source filesystem refused user xattrs: $XATTR"
fi
[ "$(stat -c %F "$MNT/fifo")" = "fifo" ] || { echo "fifo lost"; exit 1; }
echo "mounted image matches the source"

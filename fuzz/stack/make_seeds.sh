#!/bin/sh
# Writes send streams made by the real tool into DIR (default: the seeds
# directory next to this script): a full stream of a small volume with data
# and holes, and an incremental one with a WRITE and a HOLE record, each also
# as format version 1; a resume stream.
#   STACK_BIN=build/cli/stack fuzz/stack/make_seeds.sh [DIR]
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-$HERE/seeds/send_stream_fuzzer}
STACK=${STACK_BIN:-$HERE/../../build/cli/stack}
mkdir -p "$OUT"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
# 64 KiB: data in blocks 0-1 and 8, the rest holes.
head -c 8192 /dev/urandom >"$T/img"
dd if=/dev/zero of="$T/img" bs=4096 count=1 seek=15 conv=notrunc 2>/dev/null
printf 'seed' | dd of="$T/img" bs=4096 seek=8 conv=notrunc 2>/dev/null
"$STACK" pool create "$T/p.stk" --size 8M >/dev/null
"$STACK" import -p "$T/p.stk" "$T/img" vm >/dev/null
"$STACK" snapshot create -p "$T/p.stk" vm@a --note "seed" --tag t1 >/dev/null
"$STACK" volume resize -p "$T/p.stk" vm --size 32K --force >/dev/null
"$STACK" volume resize -p "$T/p.stk" vm --size 64K >/dev/null
"$STACK" snapshot create -p "$T/p.stk" vm@b >/dev/null
"$STACK" send -p "$T/p.stk" vm@a -o "$OUT/full.stream" --force 2>/dev/null
"$STACK" send -p "$T/p.stk" vm@b --from vm@a -o "$OUT/incremental.stream" --force 2>/dev/null
# The same two as format version 1 (an older stack's; still read).
"$STACK" send -p "$T/p.stk" vm@a -o "$OUT/full-v1.stream" --force --stream-version 1 2>/dev/null
"$STACK" send -p "$T/p.stk" vm@b --from vm@a -o "$OUT/incremental-v1.stream" --force \
  --stream-version 1 2>/dev/null
# Resume: the first WRITE record (blocks 0-1) arrives, the stream is cut.
HLEN=$(od -An -tu4 -j12 -N4 "$OUT/full.stream" | tr -d ' ')
head -c $((HLEN + 32 + 8192 + 10)) "$OUT/full.stream" >"$T/cut.stream"
"$STACK" pool create "$T/q.stk" --size 8M >/dev/null
"$STACK" receive -p "$T/q.stk" -i "$T/cut.stream" 2>/dev/null && exit 1
TOKEN=$("$STACK" --json pool info -p "$T/q.stk" |
        sed -n 's/.*"resume_token": "\([0-9a-f-]*\)".*/\1/p')
"$STACK" send -p "$T/p.stk" --resume "$TOKEN" -o "$OUT/resume.stream" --force 2>/dev/null

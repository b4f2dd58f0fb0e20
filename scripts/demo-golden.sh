#!/bin/bash
# The golden-image demo (README command 1 runs it through scripts/demo.sh):
# build an encrypted ext4 image from a sample tree and snapshot it, clone it,
# edit the clone without mounting, export it, and prove the exports with the
# standard Linux tools (cryptsetup, e2fsck, qemu-img).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
STACK="$ROOT/build/cli/stack"
WORK=${1:-$ROOT/out/demo}
mkdir -p "$WORK"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*" | sed "s|$ROOT/build/cli/||g; s|$WORK/||g"; "$@"; }
cd "$WORK"

step "a sample root tree (the stack source itself, plus a few system-like files)"
mkdir -p tree/etc tree/srv
cp -r "$ROOT/spec" tree/srv/spec
cp -r "$ROOT/layers" tree/srv/src
echo golden > tree/etc/hostname
printf 'root:x:0:0:root:/root:/bin/sh\n' > tree/etc/passwd
ln -sf /etc/hostname tree/srv/hostname-link
du -sh tree | sed 's/^/  /'
printf 'demo passphrase' > pass.txt   # a key file: passphrases never come from argv
KDF="--kdf pbkdf2 --kdf-time-ms 200"

step "1. build: pool + volume + LUKS2 + ext4 + populate + snapshot, one command"
run "$STACK" build -p images.stk golden --from tree --size 1G --snapshot v1 -k pass.txt $KDF \
    --note "demo golden image" --tag demo
run "$STACK" snapshot list -p images.stk golden

step "2. clone the snapshot for a task (O(1): blocks are shared)"
run "$STACK" clone -p images.stk golden@v1 task-1
run "$STACK" volume list -p images.stk --all

step "3. edit the clone without mounting"
echo "hello from task-1" > motd
run "$STACK" fs put -p images.stk task-1 motd /etc/motd -k pass.txt
run "$STACK" fs mkdir -p images.stk task-1 --parents /srv/task-1/output -k pass.txt
run "$STACK" fs rm -p images.stk task-1 -r /srv/spec -k pass.txt
run "$STACK" fs ls -p images.stk task-1 /etc -l -k pass.txt
run "$STACK" fs cat -p images.stk task-1 /etc/motd -k pass.txt
echo "  (the snapshot is unchanged:)"
run "$STACK" fs ls -p images.stk golden@v1 /srv -k pass.txt

step "4. export the clone: LUKS2 as stored, LUKS1 for QEMU, and decrypted"
run "$STACK" export -p images.stk task-1 task-1.luks2 --format stored
run "$STACK" export -p images.stk task-1 task-1.luks1 --format luks1 -k pass.txt $KDF
run "$STACK" export -p images.stk task-1 task-1.ext4 --format plain -k pass.txt
ls -lsh task-1.* | sed 's/^/  /'

step "5. prove it with the standard tools"
run cryptsetup luksDump task-1.luks2 | sed -n '1,12p'
run cryptsetup open --test-passphrase --key-file pass.txt task-1.luks2 && echo "  cryptsetup: passphrase opens the LUKS2 export"
run cryptsetup open --test-passphrase --key-file pass.txt task-1.luks1 && echo "  cryptsetup: passphrase opens the LUKS1 export"
run qemu-img info --object secret,id=s0,file=pass.txt --image-opts \
    driver=luks,key-secret=s0,file.filename=task-1.luks1 | sed -n '1,4p'
run e2fsck -fn task-1.ext4
run debugfs -R "cat /etc/motd" task-1.ext4

step "6. the pool: space accounting and a full consistency check"
run "$STACK" pool info images.stk
run "$STACK" pool check images.stk
printf '\n\033[1mdone:\033[0m everything above ran in userspace, without root-only devices.\n'

#!/bin/sh
# Writes the committed seed corpora of fuzz_fsbridge_tar and
# fuzz_fsbridge_manifest (fuzz/fsbridge/seeds/<fuzzer>/), made by the real
# tools: GNU tar (gnu, pax with xattrs, sparse members, hard links,
# symlinks, a FIFO) in every compression we read (cpio is refused: the
# fuzzer found its 4 GiB allocation: seeds/fuzz_fsbridge_tar/oom-cpio-symlink), and manifests in each
# syntax spec/fsbridge.md allows. seeds/fuzz_fsbridge_tar/regress-sparse-past-ext4-max (kept,
# not made here) is a PAX sparse member of 2^50 bytes: it used to wrap block numbers. Usage: make_tar_seeds.sh [SEEDS_DIR]
set -eu
SEEDS=${1:-$(cd "$(dirname "$0")" && pwd)/seeds}
TAR=$SEEDS/fuzz_fsbridge_tar
MAN=$SEEDS/fuzz_fsbridge_manifest
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
mkdir -p "$TAR" "$MAN" "$T/src/d/e"
printf 'hello\n' > "$T/src/a"
ln "$T/src/a" "$T/src/hard"
ln -s a "$T/src/sym"
ln -s ../../a "$T/src/d/e/up"
mkfifo "$T/src/fifo"
dd if=/dev/zero of="$T/src/sparse" bs=1k seek=64 count=1 2>/dev/null
printf 'x' >> "$T/src/sparse"
setfattr -n user.k -v v "$T/src/a" 2>/dev/null || true
chmod 4755 "$T/src/d"
TOPT="--sort=name --mtime=@1 --owner=0 --group=0 --numeric-owner -C $T/src"
# shellcheck disable=SC2086
tar $TOPT --format=gnu --sparse -cf "$TAR/gnu.tar" .
# shellcheck disable=SC2086
tar $TOPT --format=pax --xattrs --sparse -cf "$TAR/pax.tar" .
# shellcheck disable=SC2086
tar $TOPT --format=ustar -cf "$TAR/ustar.tar" a sym d
gzip -9n < "$TAR/ustar.tar" > "$TAR/ustar.tar.gz"
zstd -q -19 < "$TAR/ustar.tar" > "$TAR/ustar.tar.zst"
xz -9 < "$TAR/ustar.tar" > "$TAR/ustar.tar.xz"
printf '# owners\n* uid=0 gid=0\n. mode=0755\na uid=1000 gid=1000 mode=0640 mtime=1.5\n' > "$MAN/basic"
printf 'd/e mode=04755\nwith\\040space mtime=17\nback\\\\slash uid=7\n' > "$MAN/escapes"
printf './x//y mode=0600\n' > "$MAN/normalise"

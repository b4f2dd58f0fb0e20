#!/bin/sh
# Installs every Debian package stack needs to build, test and benchmark.
# Idempotent; run as root on a fresh Debian bookworm machine.
set -eu

# Each package is used now by the build, a test or a benchmark; add one
# only with the code that needs it.
PKGS="
  build-essential cmake ninja-build pkg-config git
  g++ clang-14 libclang-rt-14-dev llvm-14
  libext2fs-dev e2fsprogs
  libargon2-dev libsodium-dev libssl-dev libgcrypt20-dev openssl
  libcli11-dev catch2 nlohmann-json3-dev
  libarchive-dev libarchive-tools tar zstd xz-utils gzip zlib1g-dev
  libxxhash-dev
  cryptsetup-bin qemu-utils gdb strace
  nbdkit nbdkit-plugin-dev libnbd-bin python3-libnbd
  python3 python3-cryptography
  util-linux coreutils attr xfsprogs
  librbd-dev librados-dev ceph-mon ceph-osd ceph-common qemu-block-extra
  umoci skopeo
"

missing=""
for p in $PKGS; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done

if [ -z "$missing" ]; then
  echo "setup: all packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
echo "setup: installing:$missing"
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
echo "setup: done"

#!/bin/sh
# Crash soak: power cuts at every mutating op of as many random pool
# workloads as fit in the time given (default 300 s); prints the count.
#   tests/pool/crash_soak.sh [SECONDS] [FIRST_SEED]
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${STACK_BUILD_DIR:-$ROOT/build}
BIN=$BUILD/tests/pool/pool_crash_soak
if [ ! -x "$BIN" ]; then
  STACK_BUILD_DIR=$BUILD "$ROOT/scripts/build.sh"
fi
exec "$BIN" "${1:-300}" "${2:-1000}"

#!/bin/bash
# The fuzz soak (issue 12): every fuzzer for RUNS executions (default 10^7)
# from its seed corpus, JOBS at a time (default: the number of cores), each
# with coverage and ASan/UBSan; reports executions, wall time and result per
# fuzzer and one SOAK line. Builds the fuzzers first (build-fuzz/).
#   scripts/fuzz_soak.sh [RUNS] [JOBS]
# SOAK_ONLY=REGEX soaks only the fuzzers whose name matches (grep -E), so a
# long soak can be split across runs; results of other fuzzers are kept.
# Findings (crash-*, leak-*, timeout-*) are kept in build-fuzz/soak/<fuzzer>/.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${1:-10000000}
JOBS=${2:-$(nproc)}
. "$ROOT/scripts/fuzz_corpus.sh"
STACK_BUILD_DIR="$ROOT/build-fuzz" STACK_CXX=clang++-14 STACK_CC=clang-14 \
  STACK_CMAKE_ARGS="-DSTACK_FUZZ=ON -DSTACK_BENCH=OFF ${STACK_CMAKE_ARGS:-}" \
  STACK_BUILD_TARGETS=stack_fuzzers "$ROOT/scripts/build.sh" || { echo "SOAK: BUILD FAILED"; exit 1; }
OUT="$ROOT/build-fuzz/soak"
mkdir -p "$OUT"

# soak_one <fuzzer path>: runs it, writes OUT/<name>.result.
soak_one() {
  local f=$1 name area dir t0 rc execs
  name=$(basename "$f"); area=$(basename "$(dirname "$f")")
  dir="$OUT/$name"; rm -rf "$dir" "$OUT/$name.result"; mkdir -p "$dir/corpus"
  if ! fuzz_corpus "$area" "$name" "$dir/corpus"; then
    echo "$name 0 0 NO-SEEDS" > "$OUT/$name.result"; return
  fi
  t0=$SECONDS
  (cd "$dir" && "$f" -runs="$RUNS" -timeout=60 -print_final_stats=1 corpus > log 2>&1)
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -1)
  echo "$name ${execs:-0} $((SECONDS - t0)) $([ $rc -eq 0 ] && echo clean || echo FAILED)" \
    > "$OUT/$name.result"
}
export -f soak_one fuzz_corpus
export ROOT OUT RUNS
fuzz_targets | grep -E "/[^/]*(${SOAK_ONLY:-.})[^/]*\$" | xargs -P "$JOBS" -I{} bash -c 'soak_one "$@"' _ {}

bad=0; total=0
printf '%-28s %14s %8s %s\n' fuzzer executions seconds result
for r in "$OUT"/*.result; do
  read -r name execs secs result < "$r"
  printf '%-28s %14s %8s %s\n' "$name" "$execs" "$secs" "$result"
  total=$((total + 1))
  if [ "$result" != clean ] || [ "$execs" -lt "$RUNS" ]; then bad=$((bad + 1)); fi
done
echo "SOAK: $total fuzzers x $RUNS runs, $bad not clean"
[ $bad -eq 0 ]

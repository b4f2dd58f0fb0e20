#!/bin/bash
# The fuzz soak (issue 12): every fuzzer for RUNS executions (default 10^7)
# from its seed corpus, JOBS at a time (default: the number of cores), each
# with coverage and ASan/UBSan; reports executions, wall time and result per
# fuzzer and one SOAK line. Builds the fuzzers first (build-fuzz/).
#   scripts/fuzz_soak.sh [RUNS] [JOBS]
# SOAK_ONLY=REGEX soaks only the fuzzers whose name matches (grep -E), so a
# long soak can be split across runs; results of other fuzzers are kept.
# SOAK_TIME=SECONDS bounds each fuzzer's run (libFuzzer -max_total_time).
# SOAK_RESUME=1 goes on from where the last run of a fuzzer stopped: its
# grown corpus is kept, the run asks only for the executions still missing,
# and its result adds to the ledger (<fuzzer>.ledger in SOAK_LEDGERS, by
# default build-fuzz/soak/: one "executions seconds status commit date" line
# per run). Without it a fuzzer's ledger and corpus start afresh. With
# SOAK_LEDGERS=fuzz/soak the ledgers are the tracked record a sitting
# commits, so a soak longer than one machine's life goes on elsewhere: a
# fuzzer whose ledger is kept but whose grown corpus is gone starts again
# from its seeds and adds to the same ledger. A fuzzer is clean when every run in its ledger
# ended clean and their executions add up to RUNS: a fuzzer too slow for
# 10^7 executions in one sitting reaches them over several.
# Findings (crash-*, leak-*, timeout-*) are kept in build-fuzz/soak/<fuzzer>/.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${1:-10000000}
JOBS=${2:-$(nproc)}
. "$ROOT/scripts/fuzz_corpus.sh"
# SOAK_BUILD=DIR soaks the fuzzers already built there (e.g. build-asan,
# which scripts/test.sh builds with ASan/UBSan on every library) instead of
# building build-fuzz.
BUILD=${SOAK_BUILD:-$ROOT/build-fuzz}
if [ -z "${SOAK_BUILD:-}" ]; then
  STACK_BUILD_DIR="$BUILD" STACK_CXX=clang++-14 STACK_CC=clang-14 \
    STACK_CMAKE_ARGS="-DSTACK_FUZZ=ON -DSTACK_BENCH=OFF ${STACK_CMAKE_ARGS:-}" \
    STACK_BUILD_TARGETS=stack_fuzzers "$ROOT/scripts/build.sh" || { echo "SOAK: BUILD FAILED"; exit 1; }
fi
OUT="$BUILD/soak"
LEDGERS=${SOAK_LEDGERS:-$OUT}
case $LEDGERS in /*) ;; *) LEDGERS="$ROOT/$LEDGERS" ;; esac
# The commit the fuzzers were built from: HEAD, or SOAK_COMMIT for fuzzers
# built elsewhere (SOAK_BUILD) from another commit.
COMMIT=${SOAK_COMMIT:-$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)}
mkdir -p "$OUT" "$LEDGERS"
# Fuzzers that extract to a scratch directory (fs::temp_directory_path) run
# about a third faster with it on tmpfs; TMPDIR set by the caller wins.
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then export TMPDIR=/dev/shm; fi

# ledger_sum <ledger>: "executions seconds runs status" over its lines;
# status is FAILED if any run failed, else clean (a run "stopped" by a signal
# with no finding counts as clean).
ledger_sum() {
  awk '{e+=$1; t+=$2; n++; if ($3 != "clean" && $3 != "stopped") bad=1}
       END {printf "%d %d %d %s\n", e, t, n, (bad ? "FAILED" : "clean")}' "$1"
}

# soak_one <fuzzer path>: runs it, appends to OUT/<name>.ledger and writes
# OUT/<name>.result ("name executions seconds status runs").
soak_one() {
  local f=$1 name area dir ledger t0 rc execs done_execs left status
  name=$(basename "$f"); area=$(basename "$(dirname "$f")")
  dir="$OUT/$name"; ledger="$LEDGERS/$name.ledger"
  if [ "${SOAK_RESUME:-0}" != 1 ]; then rm -f "$ledger"; fi
  if [ ! -s "$ledger" ] || [ ! -d "$dir/corpus" ]; then
    rm -rf "$dir"; mkdir -p "$dir/corpus"
    if ! fuzz_corpus "$area" "$name" "$dir/corpus"; then
      echo "$name 0 0 NO-SEEDS 0" > "$OUT/$name.result"; return
    fi
  fi
  done_execs=0
  [ -s "$ledger" ] && read -r done_execs _ < <(ledger_sum "$ledger")
  left=$((RUNS - done_execs))
  if [ "$left" -gt 0 ]; then
    t0=$SECONDS
    (cd "$dir" && "$f" -runs="$left" -timeout=60 -print_final_stats=1 \
       ${SOAK_TIME:+-max_total_time=$SOAK_TIME} corpus > log 2>&1)
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -1)
    # A run stopped by a signal (libFuzzer prints "run interrupted" and exits
    # with its interrupted_exitcode) found nothing: its executions count and
    # the line says "stopped", so stopping a soak by hand needs no clean-up.
    status=FAILED
    if [ $rc -eq 0 ]; then status=clean
    elif grep -q 'libFuzzer: run interrupted' "$dir/log" && ! ls "$dir"/crash-* "$dir"/leak-* "$dir"/timeout-* >/dev/null 2>&1; then
      status=stopped
    fi
    echo "${execs:-0} $((SECONDS - t0)) $status $COMMIT $(date -u +%F)" >> "$ledger"
    cp "$dir/log" "$dir/log.$(wc -l < "$ledger")"
  fi
  read -r execs secs runs status < <(ledger_sum "$ledger")
  echo "$name $execs $secs $status $runs" > "$OUT/$name.result"
}
export -f soak_one ledger_sum fuzz_corpus
export ROOT OUT LEDGERS COMMIT RUNS SOAK_TIME SOAK_RESUME
fuzz_targets "$BUILD" | grep -E "/[^/]*(${SOAK_ONLY:-.})[^/]*\$" | xargs -P "$JOBS" -I{} bash -c 'soak_one "$@"' _ {}

bad=0; total=0
printf '%-28s %14s %8s %5s %s\n' fuzzer executions seconds runs result
for r in "$OUT"/*.result; do
  read -r name execs secs result runs < "$r"
  printf '%-28s %14s %8s %5s %s\n' "$name" "$execs" "$secs" "${runs:-1}" "$result"
  total=$((total + 1))
  if [ "$result" != clean ] || [ "$execs" -lt "$RUNS" ]; then bad=$((bad + 1)); fi
done
echo "SOAK: $total fuzzers x $RUNS runs, $bad not clean or not done"
[ $bad -eq 0 ]

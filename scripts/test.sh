#!/bin/bash
# Runs every test of stack and ends with one SUMMARY line (each phase's
# counts and wall time).
#   release: installs packages (scripts/setup.sh), builds with g++, build type
#            Release (what users and packagers build; warnings are errors),
#            and runs the whole ctest suite;
#   asan:    builds with clang 14 + ASan/UBSan and runs the suite again;
#   tsan:    builds the threaded tests with clang 14 + ThreadSanitizer and
#            runs the tests labelled `threads`; a data race fails the test;
#   fuzz:    builds the libFuzzer targets and runs each one briefly on its
#            seed corpus.
# asan and fuzz share one build (build-asan): every library is compiled once
# with ASan/UBSan and libFuzzer's coverage, so the fuzzers are guided by (and
# check) all the code they reach, and a CI run pays for one clang build
# instead of two.
# Env: STACK_TEST_PHASES="release asan tsan fuzz" (default all),
#      STACK_FUZZ_SECONDS=15.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PHASES=${STACK_TEST_PHASES:-release asan tsan fuzz}
FUZZ_SECONDS=${STACK_FUZZ_SECONDS:-15}
# The targets holding the tests labelled `threads` (and what they drive).
TSAN_TARGETS="test_block test_pool test_fde test_nbd test_stack stack"
JOBS=$(nproc)
# The sanitizer builds carry line tables, not full debug info (see
# STACK_LINE_TABLES in cmake/StackDefaults.cmake).
SAN_DEBUG_ARGS="-DSTACK_LINE_TABLES=ON"
# The one clang build the asan and fuzz phases share (see above).
ASAN_FUZZ_ARGS="-DSTACK_FUZZ=ON -DSTACK_BENCH=OFF $SAN_DEBUG_ARGS ${STACK_CMAKE_ARGS:-}"
declare -a RESULTS=()
FAILED=0

"$ROOT/scripts/setup.sh" || { echo "SUMMARY: FAIL (setup failed)"; exit 1; }

# elapsed <start SECONDS>: "12m05s" since then.
elapsed() { local t=$((SECONDS - $1)); printf '%dm%02ds' $((t / 60)) $((t % 60)); }

# run_ctest <label> <build dir> [ctest args...]: runs ctest, records
# "label: P passed, F failed, S skipped" (the caller appends the time).
run_ctest() {
  local label=$1 dir=$2 junit="$2/ctest-junit.xml"
  shift 2
  rm -rf "$dir/test-tmp" "$junit"; mkdir -p "$dir/test-tmp"
  (cd "$dir" && ctest -j"$JOBS" --output-on-failure --timeout 1500 --output-junit "$junit" --no-tests=error "$@")
  local rc=$?
  # First line "P F S"; then one line per skipped test with the reasons it
  # printed ("SKIP: ..." lines, as tests/lib/stacktest.py and the shell
  # tests write them).
  local report
  report=$(/usr/bin/python3 - "$junit" <<'PY'
import sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except Exception:
    print("0 0 0"); sys.exit()
p = f = s = 0
skipped = []
for tc in root.iter("testcase"):
    st = tc.get("status", "")
    if tc.find("skipped") is not None or st in ("notrun", "disabled", "skipped"):
        s += 1
        out = tc.findtext("system-out") or ""
        why = [l[5:].strip() for l in out.splitlines() if l.startswith("SKIP:")]
        skipped.append(f"  {tc.get('name')}: {'; '.join(why) or '(no reason printed)'}")
    elif tc.find("failure") is not None or tc.find("error") is not None or st == "fail":
        f += 1
    else:
        p += 1
print(p, f, s)
print("\n".join(skipped))
PY
)
  local p f s
  read -r p f s <<<"$(head -n1 <<<"$report")"
  RESULTS+=("$label: $p passed, $f failed, $s skipped")
  if [ "$s" != 0 ]; then echo "SKIPPED in $label:"; tail -n +2 <<<"$report"; fi
  if [ $rc -ne 0 ] || [ "$f" != 0 ]; then FAILED=1; fi
}

. "$ROOT/scripts/fuzz_corpus.sh"

# fuzz_one <fuzzer>: runs it FUZZ_SECONDS on its seed corpus; writes "ok" or
# why not to $RES/<name>, and prints the log's tail when it failed.
fuzz_one() {
  local f=$1 name area work
  name=$(basename "$f"); area=$(basename "$(dirname "$f")")
  work=$(mktemp -d)
  if ! fuzz_corpus "$area" "$name" "$work"; then
    echo "fuzz: $name has no seed corpus (fuzz/$area/{corpus,seeds}/ or make_seeds.sh)"
    echo "no seeds" > "$RES/$name"; rm -rf "$work"; return
  fi
  echo "fuzz: $name for ${FUZZ_SECONDS}s on $(ls "$work" | wc -l) seeds"
  if "$f" -max_total_time="$FUZZ_SECONDS" -timeout=60 -print_final_stats=0 "$work" >"$work.log" 2>&1; then
    echo ok > "$RES/$name"
  else
    echo "fuzz: $name FAILED"; tail -40 "$work.log"; echo FAILED > "$RES/$name"
  fi
  rm -rf "$work" "$work.log"
}
export -f fuzz_one fuzz_corpus
export ROOT

for phase in $PHASES; do
  echo "=== phase: $phase ==="
  t0=$SECONDS
  case $phase in
    release)
      if STACK_BUILD_DIR="$ROOT/build" STACK_BUILD_TYPE=Release "$ROOT/scripts/build.sh"; then
        run_ctest "release (g++, Release)" "$ROOT/build"
      else
        RESULTS+=("release: BUILD FAILED"); FAILED=1
      fi ;;
    asan)
      if STACK_BUILD_DIR="$ROOT/build-asan" STACK_CXX=clang++-14 STACK_CC=clang-14 \
         STACK_SANITIZER=asan STACK_CMAKE_ARGS="$ASAN_FUZZ_ARGS" \
         "$ROOT/scripts/build.sh"; then
        ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
          run_ctest "asan+ubsan (clang)" "$ROOT/build-asan"
      else
        RESULTS+=("asan: BUILD FAILED"); FAILED=1
      fi ;;
    tsan)
      # Only what the tests labelled `threads` run (tests/CMakeLists.txt:
      # THREADED sources of the Catch binaries; script tests with that label
      # drive the `stack` binary). halt_on_error: the first race ends the
      # process with TSan's exit status 66, so the test fails.
      # File by file (STACK_UNITY=OFF), unlike the other builds: a unity
      # batch hides a file that compiles only thanks to a sibling's includes
      # or usings; this build catches that for every library, the CLI and
      # most tests.
      if STACK_BUILD_DIR="$ROOT/build-tsan" STACK_CXX=clang++-14 STACK_CC=clang-14 \
         STACK_SANITIZER=tsan \
         STACK_CMAKE_ARGS="-DSTACK_BENCH=OFF -DSTACK_UNITY=OFF $SAN_DEBUG_ARGS ${STACK_CMAKE_ARGS:-}" \
         STACK_BUILD_TARGETS="$TSAN_TARGETS" "$ROOT/scripts/build.sh"; then
        TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
          run_ctest "tsan (clang)" "$ROOT/build-tsan" -L '^threads$'
      else
        RESULTS+=("tsan: BUILD FAILED"); FAILED=1
      fi ;;
    fuzz)
      if STACK_BUILD_DIR="$ROOT/build-asan" STACK_CXX=clang++-14 STACK_CC=clang-14 \
         STACK_SANITIZER=asan STACK_CMAKE_ARGS="$ASAN_FUZZ_ARGS" \
         STACK_BUILD_TARGETS=stack_fuzzers "$ROOT/scripts/build.sh"; then
        # Two at a time (one per core here): each runs FUZZ_SECONDS alone.
        res=$(mktemp -d)
        fuzz_targets "$ROOT/build-asan" | FUZZ_SECONDS=$FUZZ_SECONDS RES=$res \
          xargs -P "$JOBS" -I{} bash -c 'fuzz_one "$@"' _ {}
        n=$(ls "$res" | wc -l); bad=$(grep -L '^ok$' "$res"/* 2>/dev/null | wc -l)
        rm -rf "$res"
        RESULTS+=("fuzz: $n targets x ${FUZZ_SECONDS}s, $bad failed")
        [ $n -eq 0 ] || [ $bad -ne 0 ] && FAILED=1
      else
        RESULTS+=("fuzz: BUILD FAILED"); FAILED=1
      fi ;;
    *) RESULTS+=("$phase: unknown phase"); FAILED=1 ;;
  esac
  RESULTS[-1]="${RESULTS[-1]} in $(elapsed $t0)"
done

echo
for r in "${RESULTS[@]}"; do echo "  $r"; done
if [ $FAILED -eq 0 ]; then
  echo "SUMMARY: PASS ($(IFS=';'; echo "${RESULTS[*]}"))"
else
  echo "SUMMARY: FAIL ($(IFS=';'; echo "${RESULTS[*]}"))"
fi
exit $FAILED

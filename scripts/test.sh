#!/bin/bash
# Runs every test of stack and ends with one SUMMARY line.
#   1. installs packages (scripts/setup.sh), builds with g++ (warnings are errors)
#      and runs the whole ctest suite;
#   2. builds with clang 14 + ASan/UBSan and runs the suite again;
#   3. builds the libFuzzer targets and runs each one briefly on its corpus.
# Env: STACK_TEST_PHASES="release asan fuzz" (default all), STACK_FUZZ_SECONDS=20.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PHASES=${STACK_TEST_PHASES:-release asan fuzz}
FUZZ_SECONDS=${STACK_FUZZ_SECONDS:-20}
JOBS=$(nproc)
declare -a RESULTS=()
FAILED=0

"$ROOT/scripts/setup.sh" || { echo "SUMMARY: FAIL (setup failed)"; exit 1; }

# run_ctest <label> <build dir>: runs ctest, records "label: P passed, F failed, S skipped".
run_ctest() {
  local label=$1 dir=$2 junit="$2/ctest-junit.xml"
  rm -rf "$dir/test-tmp"; mkdir -p "$dir/test-tmp"
  (cd "$dir" && ctest -j"$JOBS" --output-on-failure --timeout 1500 --output-junit "$junit")
  local rc=$?
  local counts
  counts=$(/usr/bin/python3 - "$junit" <<'PY'
import sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except Exception:
    print("0 0 0 -"); sys.exit()
p = f = s = 0
skipped = []
for tc in root.iter("testcase"):
    st = tc.get("status", "")
    if tc.find("skipped") is not None or st in ("notrun", "disabled", "skipped"):
        s += 1; skipped.append(tc.get("name"))
    elif tc.find("failure") is not None or tc.find("error") is not None or st == "fail":
        f += 1
    else:
        p += 1
print(p, f, s, ",".join(skipped) or "-")
PY
)
  read -r p f s skipped <<<"$counts"
  RESULTS+=("$label: $p passed, $f failed, $s skipped")
  if [ "$skipped" != "-" ]; then echo "SKIPPED in $label: $skipped"; fi
  if [ $rc -ne 0 ] || [ "$f" != 0 ]; then FAILED=1; fi
}

for phase in $PHASES; do
  echo "=== phase: $phase ==="
  case $phase in
    release)
      if STACK_BUILD_DIR="$ROOT/build" "$ROOT/scripts/build.sh"; then
        run_ctest release "$ROOT/build"
      else
        RESULTS+=("release: BUILD FAILED"); FAILED=1
      fi ;;
    asan)
      if STACK_BUILD_DIR="$ROOT/build-asan" STACK_CXX=clang++-14 STACK_CC=clang-14 \
         STACK_SANITIZER=asan STACK_CMAKE_ARGS="-DSTACK_BENCH=OFF" "$ROOT/scripts/build.sh"; then
        ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
          run_ctest "asan+ubsan (clang)" "$ROOT/build-asan"
      else
        RESULTS+=("asan: BUILD FAILED"); FAILED=1
      fi ;;
    fuzz)
      if STACK_BUILD_DIR="$ROOT/build-fuzz" STACK_CXX=clang++-14 STACK_CC=clang-14 \
         STACK_CMAKE_ARGS="-DSTACK_FUZZ=ON -DSTACK_BENCH=OFF" STACK_BUILD_TARGETS=stack_fuzzers \
         "$ROOT/scripts/build.sh"; then
        n=0; bad=0
        for f in $(find "$ROOT/build-fuzz/fuzz" -mindepth 2 -maxdepth 2 -type f -perm -u+x 2>/dev/null | sort); do
          name=$(basename "$f"); area=$(basename "$(dirname "$f")")
          work=$(mktemp -d)
          # Seed corpus: fuzz/<area>/{corpus,seeds}/<name>/ if present, else fuzz/<area>/{corpus,seeds}/.
          for c in "$ROOT/fuzz/$area/corpus/$name" "$ROOT/fuzz/$area/seeds/$name" "$ROOT/fuzz/$area/corpus" "$ROOT/fuzz/$area/seeds"; do
            if [ -d "$c" ]; then find "$c" -maxdepth 1 -type f -exec cp {} "$work/" \; ; break; fi
          done
          echo "fuzz: $name for ${FUZZ_SECONDS}s"
          if ! "$f" -max_total_time="$FUZZ_SECONDS" -timeout=60 -print_final_stats=0 "$work" >"$work.log" 2>&1; then
            echo "fuzz: $name FAILED"; tail -40 "$work.log"; bad=$((bad+1))
          fi
          n=$((n+1)); rm -rf "$work" "$work.log"
        done
        RESULTS+=("fuzz: $n targets x ${FUZZ_SECONDS}s, $bad crashed")
        [ $bad -ne 0 ] && FAILED=1
      else
        RESULTS+=("fuzz: BUILD FAILED"); FAILED=1
      fi ;;
    *) echo "unknown phase $phase"; FAILED=1 ;;
  esac
done

echo
for r in "${RESULTS[@]}"; do echo "  $r"; done
if [ $FAILED -eq 0 ]; then
  echo "SUMMARY: PASS ($(IFS=';'; echo "${RESULTS[*]}"))"
else
  echo "SUMMARY: FAIL ($(IFS=';'; echo "${RESULTS[*]}"))"
fi
exit $FAILED

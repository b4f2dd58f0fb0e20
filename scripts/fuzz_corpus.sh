# Sourced by scripts/test.sh and scripts/fuzz_soak.sh (needs $ROOT).
# fuzz_corpus <area> <fuzzer> <dir>: copies the fuzzer's seed corpus into dir:
# fuzz/<area>/{corpus,seeds}/<fuzzer>/, else fuzz/<area>/{corpus,seeds}/, else
# what fuzz/<area>/make_seeds.sh writes (seeds made by the real tools). Fails
# when none gives a seed: a fuzzer without seeds runs blind.
fuzz_corpus() {
  local area=$1 name=$2 work=$3 c
  for c in "$ROOT/fuzz/$area/corpus/$name" "$ROOT/fuzz/$area/seeds/$name" \
           "$ROOT/fuzz/$area/corpus" "$ROOT/fuzz/$area/seeds"; do
    if [ -d "$c" ]; then find "$c" -maxdepth 1 -type f -exec cp {} "$work/" \; ; break; fi
  done
  if [ -z "$(ls -A "$work")" ] && [ -x "$ROOT/fuzz/$area/make_seeds.sh" ]; then
    "$ROOT/fuzz/$area/make_seeds.sh" "$work" >/dev/null || return 1
  fi
  [ -n "$(ls -A "$work")" ]
}

# fuzz_targets [build dir]: every fuzzer built there (default build-fuzz),
# one path per line.
fuzz_targets() {
  find "${1:-$ROOT/build-fuzz}/fuzz" -mindepth 2 -maxdepth 2 -type f -perm -u+x 2>/dev/null | sort
}

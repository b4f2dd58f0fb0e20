#!/bin/sh
# Configures and builds stack into build/ (or $STACK_BUILD_DIR).
#   STACK_CXX=clang++-14   choose the compiler
#   STACK_SANITIZER=asan   none | asan | tsan
#   STACK_BUILD_TYPE=Release  (default RelWithDebInfo)
#   STACK_WERROR=OFF       warnings are errors unless this says OFF
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${STACK_BUILD_DIR:-$ROOT/build}
GEN=""
command -v ninja >/dev/null 2>&1 && GEN="-G Ninja"
# Always reconfigure: cheap, and picks up newly added layer directories.
# shellcheck disable=SC2086
cmake -S "$ROOT" -B "$BUILD" $GEN \
  -DCMAKE_BUILD_TYPE="${STACK_BUILD_TYPE:-RelWithDebInfo}" \
  -DCMAKE_CXX_COMPILER="${STACK_CXX:-g++}" \
  -DCMAKE_C_COMPILER="${STACK_CC:-gcc}" \
  -DSTACK_SANITIZER="${STACK_SANITIZER:-none}" \
  -DSTACK_WERROR="${STACK_WERROR:-ON}" \
  ${STACK_CMAKE_ARGS:-} >/dev/null
# STACK_BUILD_TARGETS: build only these targets (default: everything).
# shellcheck disable=SC2086
cmake --build "$BUILD" -j"$(nproc)" ${STACK_BUILD_TARGETS:+--target $STACK_BUILD_TARGETS}

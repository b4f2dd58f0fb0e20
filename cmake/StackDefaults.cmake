# Compiler settings shared by every stack target.
# Warnings are always on; turning them into errors is for developers and CI
# (scripts/build.sh sets STACK_WERROR=ON), not for every user: a packager's
# plain `cmake -DCMAKE_BUILD_TYPE=Release` build must not stop on a newer
# compiler's new (or false-positive) warning.
option(STACK_WERROR "Treat compiler warnings as errors (developers, CI)" OFF)
set(STACK_WARNINGS -Wall -Wextra -Wno-missing-field-initializers)
if(STACK_WERROR)
  list(APPEND STACK_WARNINGS -Werror)
endif()
# g++ 12 at -O3 (Release) reports -Wrestrict inside libstdc++'s std::string
# for ordinary code such as `"c" + std::to_string(i)` (GCC PR 105651, fixed
# in 13): nine such false positives in bench/ and tests/ stopped a Release
# -Werror build.
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
  list(APPEND STACK_WARNINGS -Wno-restrict)
endif()

# Unity build: each target's sources are compiled in batches of 8, one
# translation unit per batch, so the heavy headers (CLI11 alone costs ~12 s
# at -O2 per file that includes it, Catch2 ~2 s) are parsed and their inline
# code generated once per batch instead of once per file. A clean build
# (what CI does three times) takes about 40 % less CPU (g++ Release: 964 s
# -> 565 s). The price: names in a file's anonymous namespace must not
# clash with a sibling's in the same target, and a change recompiles its
# whole batch. -DSTACK_UNITY=OFF compiles file by file (quicker
# edit-compile cycles on one file).
option(STACK_UNITY "Compile each target's sources in batches (unity build)" ON)

# Line tables instead of full debug info (clang): sanitizer reports still
# name the file:line of every frame, inlined ones too, and the clang compiles
# take about a fifth less CPU (layers/pool/src/pool.cc under ASan: 15.3 s
# -> 11.8 s). scripts/test.sh sets it for its sanitizer builds; a developer
# debugging in gdb leaves it off.
option(STACK_LINE_TABLES "Clang: -gline-tables-only instead of full -g" OFF)
if(STACK_LINE_TABLES AND CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  add_compile_options(-gline-tables-only)
endif()

if(STACK_SANITIZER STREQUAL "asan")
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer
                      -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
  # Internal consistency checks too costly for release builds.
  add_compile_definitions(STACK_EXPENSIVE_CHECKS=1)
elseif(STACK_SANITIZER STREQUAL "tsan")
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer)
  add_link_options(-fsanitize=thread)
elseif(NOT STACK_SANITIZER STREQUAL "none")
  message(FATAL_ERROR "STACK_SANITIZER must be none, asan or tsan")
endif()

if(STACK_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "STACK_FUZZ needs clang (libFuzzer)")
  endif()
  if(STACK_SANITIZER STREQUAL "tsan")
    message(FATAL_ERROR "STACK_FUZZ builds with ASan/UBSan; it cannot be combined with tsan")
  endif()
  # Every target, libraries included, gets coverage and ASan/UBSan, so a
  # fuzzer is guided by (and checks) all the code it reaches, not only its
  # harness. A UB finding stops the run like a crash. Only the fuzzer
  # executables link libFuzzer itself (fuzz/CMakeLists.txt).
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer
                      -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
endif()

# stack_defaults(target): the warnings (errors with STACK_WERROR) and the project's C++ settings.
function(stack_defaults target)
  target_compile_options(${target} PRIVATE ${STACK_WARNINGS})
  target_compile_features(${target} PUBLIC cxx_std_20)
  if(STACK_UNITY)
    set_target_properties(${target} PROPERTIES UNITY_BUILD ON UNITY_BUILD_BATCH_SIZE 8)
  endif()
endfunction()

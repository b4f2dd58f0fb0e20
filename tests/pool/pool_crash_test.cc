// Power cut at every mutating operation of random workloads, in the three
// cut modes; after each, the reopened pool must be consistent and equal to
// a state at or after its last commit (crash_harness.h).
#include <catch2/catch.hpp>

#include "crash_harness.h"

using namespace stack;
using namespace stack::pool::testing;

TEST_CASE("power cut at every mutating op recovers to a committed state") {
  uint64_t points = 0;
  for (uint64_t seed = 1; seed <= 8; ++seed) {
    CrashWorkload w = CrashWorkload::Generate(seed, 30);
    CrashResult full = RunCrashCase(w, -1, CutMode::kDropAll, 0);
    INFO("seed " << seed);
    REQUIRE(full.error == "");
    REQUIRE(full.mutating_ops > 0);
    for (CutMode mode : {CutMode::kDropAll, CutMode::kTearLast, CutMode::kRandomSubset}) {
      for (uint64_t k = 0; k < full.mutating_ops; ++k) {
        CrashResult r = RunCrashCase(w, static_cast<int64_t>(k), mode, seed * 1000 + k);
        INFO("cut at mutating op " << k << " mode " << static_cast<int>(mode));
        REQUIRE(r.error == "");
        REQUIRE(r.cut);
        ++points;
      }
    }
  }
  WARN("crash points exercised: " << points);
  REQUIRE(points >= 1000);
}

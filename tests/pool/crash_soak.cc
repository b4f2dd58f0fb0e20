// pool_crash_soak [SECONDS] [FIRST_SEED]: runs crash cases (every mutating
// op of random workloads, three cut modes) until the time is up; prints the
// number of crash points and exits non-zero on the first failure.
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "crash_harness.h"

using namespace stack;
using namespace stack::pool::testing;

int main(int argc, char** argv) {
  double seconds = argc > 1 ? std::atof(argv[1]) : 60;
  uint64_t seed = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 1000;
  auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  uint64_t points = 0, workloads = 0;
  while (elapsed() < seconds) {
    CrashWorkload w = CrashWorkload::Generate(seed, 20 + static_cast<int>(seed % 40));
    CrashResult full = RunCrashCase(w, -1, CutMode::kDropAll, 0);
    if (!full.ok) {
      std::printf("FAIL seed %llu (no cut): %s\n", (unsigned long long)seed, full.error.c_str());
      return 1;
    }
    for (CutMode mode : {CutMode::kDropAll, CutMode::kTearLast, CutMode::kRandomSubset}) {
      for (uint64_t k = 0; k < full.mutating_ops; ++k) {
        CrashResult r = RunCrashCase(w, static_cast<int64_t>(k), mode, seed * 7919 + k);
        if (!r.ok || !r.cut) {
          std::printf("FAIL seed %llu cut at %llu mode %d: %s\n", (unsigned long long)seed,
                      (unsigned long long)k, static_cast<int>(mode), r.error.c_str());
          return 1;
        }
        ++points;
      }
    }
    ++workloads;
    ++seed;
  }
  std::printf("crash points: %llu (workloads %llu, %.0f s, all recovered)\n",
              (unsigned long long)points, (unsigned long long)workloads, elapsed());
  return 0;
}

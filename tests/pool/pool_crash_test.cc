// Power cut at every mutating operation of random workloads, in the three
// cut modes; after each, the reopened pool must be consistent and equal to
// a state at or after its last commit (crash_harness.h).
#include <catch2/catch.hpp>

#include "crash_harness.h"
#include "pool_test_util.h"

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

TEST_CASE("an I/O error is IoError, never Corruption, and leaves the pool consistent") {
  using stack::pool::Pool;
  using stack::testing::RandomBytes;
  constexpr uint32_t kBs = 4096;
  auto a = RandomBytes(32 * kBs, 1), b = RandomBytes(16 * kBs, 2), c = RandomBytes(8 * kBs, 3);
  auto after_b = a;
  std::copy(b.begin(), b.end(), after_b.begin() + 4 * kBs);
  auto after_c = after_b;
  std::copy(c.begin(), c.end(), after_c.begin() + 20 * kBs);
  int failures = 0;
  bool completed = false;
  for (uint64_t k = 0; !completed; ++k) {
    INFO("failing operation " << k);
    MemPool mp;
    REQUIRE_OK(mp.Create(1024, kBs, /*cache=*/0, /*faulty=*/true));
    REQUIRE_OK(mp.pool->CreateVolume("v", 32 * kBs, {}));
    {
      auto v = mp.pool->OpenVolume("v", false);
      REQUIRE_OK(v);
      REQUIRE_OK((*v)->Write(0, a));
      REQUIRE_OK((*v)->Flush());
    }
    const uint64_t start = mp.ctl->ops();
    mp.ctl->FailOperation(start + k, Code::kIoError);
    Status st;
    {
      auto v = mp.pool->OpenVolume("v", false);
      REQUIRE_OK(v);
      st = (*v)->Write(4 * kBs, b);
      if (st.ok()) st = mp.pool->Snapshot("v", "v@s", {});
      if (st.ok()) st = (*v)->Write(20 * kBs, c);
      if (st.ok()) {
        std::vector<uint8_t> buf(32 * kBs);
        st = (*v)->Read(0, buf);
      }
      if (st.ok()) st = (*v)->Flush();
    }
    if (!st.ok()) {
      ++failures;
      REQUIRE(st.code() == Code::kIoError);
    } else if (mp.ctl->ops() <= start + k) {
      completed = true;  // k is past the workload's last operation
    }
    // Otherwise the failed operation was a discard of freed space after a
    // durable commit: a hint, rightly ignored.
    mp.ctl->ClearFaults();
    // The running pool is consistent, and so is the store after a reboot.
    for (int round = 0; round < 2; ++round) {
      auto r = mp.pool->Check();
      REQUIRE_OK(r);
      INFO(r->ToJson());
      REQUIRE(r->ok);
      auto got = ReadEntry(*mp.pool, "v");
      REQUIRE((got == a || got == after_b || got == after_c));
      REQUIRE_OK(mp.Reopen());
    }
  }
  REQUIRE(failures >= 10);
}

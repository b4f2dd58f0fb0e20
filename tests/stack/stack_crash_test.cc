// The all-layers crash harness itself: its model matches an uncut run, and
// its checks catch the defects they exist for (deliberately injected), so a
// soak reporting "inconsistencies: 0" means something.
#include <catch2/catch.hpp>

#include "stack_crash_harness.h"

using namespace stack;
using namespace stack::soak;

namespace {

// Runs cut points 0, step, 2*step... of w in `mode` with `sabotage`;
// returns how many were reported inconsistent (the first error in *first;
// those e2fsck flagged counted in *fsck_failures).
int CountFailures(const Workload& w, uint64_t total, uint64_t step, Sabotage sabotage,
                  bool e2fsck, std::string* first, int* fsck_failures) {
  int failures = 0;
  for (uint64_t k = 0; k < total; k += step) {
    RunOptions o;
    o.cut_at = int64_t(k);
    o.mode = CutMode::kDropAll;
    o.sabotage = sabotage;
    o.e2fsck = e2fsck;
    o.passphrase = false;
    RunResult r = RunCase(w, o);
    if (!r.ok) {
      if (failures++ == 0) *first = r.error;
      if (e2fsck && r.error.find("e2fsck -fn exit") != std::string::npos) ++*fsck_failures;
    }
  }
  return failures;
}

}  // namespace

TEST_CASE("an uncut workload ends as its model, e2fsck clean, and every cut point is reached") {
  Workload w = Workload::Generate(7, 16);
  INFO(w.Describe());
  RunOptions o;
  o.e2fsck = true;
  RunResult full = RunCase(w, o);
  INFO(full.error);
  REQUIRE(full.ok);
  REQUIRE(full.e2fsck_ran);
  REQUIRE_FALSE(full.cut);
  REQUIRE(full.mutating_ops > 10);
  // The last point cuts the closing commit; one past it cuts nothing.
  RunOptions last;
  last.cut_at = int64_t(full.mutating_ops - 1);
  RunResult r = RunCase(w, last);
  INFO(r.error);
  REQUIRE(r.ok);
  REQUIRE(r.cut);
  last.cut_at = int64_t(full.mutating_ops);
  REQUIRE_FALSE(RunCase(w, last).cut);
}

TEST_CASE("the harness catches lost durability (flushes dropped below ext4)") {
  Workload w = Workload::Generate(7, 16);
  RunResult full = RunCase(w, {});
  REQUIRE(full.ok);
  std::string first;
  int fsck = 0;
  const int failures =
      CountFailures(w, full.mutating_ops, 3, Sabotage::kSwallowFlush, false, &first, &fsck);
  INFO(first);
  CHECK(failures > 0);
  CHECK(first.find("tree matches no committed state") != std::string::npos);
}

TEST_CASE("the harness catches torn filesystem updates (the pool commits mid-update)") {
  Workload w = Workload::Generate(7, 16);
  RunResult full = RunCase(w, {});
  REQUIRE(full.ok);
  std::string first;
  int fsck = 0;
  // Cut points are counted on the sabotaged run's own (larger) op count.
  RunOptions count;
  count.sabotage = Sabotage::kCommitEveryWrite;
  RunResult sab = RunCase(w, count);
  REQUIRE(sab.ok);
  const int failures =
      CountFailures(w, sab.mutating_ops, sab.mutating_ops / 40 + 1, Sabotage::kCommitEveryWrite,
                    true, &first, &fsck);
  INFO(first);
  CHECK(failures > 0);
  // e2fsck, the oracle, sees the half-written metadata too.
  CHECK(fsck > 0);
}

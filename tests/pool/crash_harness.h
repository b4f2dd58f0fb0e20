// Crash-test harness shared by the crash test and the soak tool: a
// deterministic random workload, its model states, and one run that cuts
// the power at a chosen mutating operation, reopens and checks recovery.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "block/fault_device.h"

namespace stack::pool::testing {

struct CrashOp {
  enum Kind {
    kWrite, kDiscard, kSnapshot, kClone, kDelete, kRollback, kResize, kFlush, kCreate, kRename
  };
  Kind kind = kWrite;
  std::string a, b;
  uint64_t off = 0, len = 0, seed = 0;
  bool commits() const { return kind != kWrite && kind != kDiscard; }
};

using PoolState = std::map<std::string, std::vector<uint8_t>>;

struct CrashWorkload {
  std::vector<CrashOp> ops;
  std::vector<PoolState> states;  // states[i]: after ops[0..i)
  static CrashWorkload Generate(uint64_t seed, int n_ops);
};

struct CrashResult {
  bool ok = true;
  std::string error;          // what went wrong (empty when ok)
  uint64_t mutating_ops = 0;  // total mutating ops of the workload (no cut)
  bool cut = false;           // the power cut happened
};

// Runs the workload once on a fresh pool. With cut_at >= 0 the power is
// cut at that mutating op (counted from the start of the workload); then
// the pool is reopened and must be consistent (Check clean, no leak) and
// equal to a model state at or after the last commit.
CrashResult RunCrashCase(const CrashWorkload& w, int64_t cut_at, CutMode mode, uint64_t seed);

}  // namespace stack::pool::testing

// The BlockDevice contract suite. Every BlockDevice implementation runs it
// from its own test file:
//
//   TEST_CASE("pool volume meets the BlockDevice contract") {
//     stack::testing::ContractTarget t;
//     t.make = [&] { return ...fresh, never-written device...; };
//     t.reopen = [&] { return ...same storage, previous object destroyed...; };
//     stack::testing::RunBlockDeviceContract(t);
//   }
//
// It checks geometry, alignment and bounds errors, zero-length requests,
// read-after-write against a model, unwritten-reads-zero (where promised),
// flush, discard and write-zeroes (and what they promise), the allocation
// query's shape and that every non-zero byte lies inside a reported extent,
// a random mixed workload, and persistence across reopen (where provided).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "block/block_device.h"

namespace stack::testing {

struct ContractTarget {
  // A fresh device that has never been written. Called once per check.
  std::function<std::unique_ptr<BlockDevice>()> make;
  // Optional: a new object over the storage of the device last returned by
  // make(), which the suite has destroyed first. Used for the reopen checks.
  std::function<std::unique_ptr<BlockDevice>()> reopen;
  // Optional: a read-only view over a device made by make() (after the
  // suite destroyed it). Writes must fail with ReadOnly.
  std::function<std::unique_ptr<BlockDevice>()> reopen_read_only;
  // Operations in the random mixed workload.
  int random_ops = 300;
};

void RunBlockDeviceContract(const ContractTarget& target);

}  // namespace stack::testing

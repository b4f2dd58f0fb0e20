// FaultDevice: a decorator that injects failures and simulates power cuts.
//
// It forwards to the device below while a FaultController, shared with the
// test, counts operations and decides what goes wrong:
//   - FailOperation(n): the n-th operation (0-based, counting reads, writes,
//     flushes, discards, write-zeroes) fails with the given code without
//     touching the device below; `sticky` makes every later one fail too.
//   - CutPowerAt(n): the n-th *mutating* operation (write, discard,
//     write-zeroes or flush) does not complete: every write acknowledged
//     since the last successful flush is undone on the device below
//     according to CutMode, and from then on every operation fails with
//     IoError ("power is off"). The device below is left holding exactly
//     what a disk might hold after the crash, so a test can reopen it (for
//     example through MemStorage) and check recovery.
//
// CutMode:
//   kDropAll       every unflushed write is lost.
//   kTearLast      every unflushed write is lost except a prefix of the
//                  interrupted write (whole 512-byte sectors), which lands.
//   kRandomSubset  each block touched since the flush independently ends up
//                  holding its pre-flush content or any one of the versions
//                  written to it since (a write cache reordering writes).
//
// Undo state is kept in memory per unflushed block; meant for tests.
// Thread-safety: none.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "block/passthrough_device.h"

namespace stack {

enum class CutMode { kDropAll, kTearLast, kRandomSubset };

class FaultController {
 public:
  void FailOperation(uint64_t n, Code code = Code::kIoError, bool sticky = false) {
    fail_at_ = n;
    fail_code_ = code;
    fail_sticky_ = sticky;
  }
  void CutPowerAt(uint64_t mutating_op, CutMode mode = CutMode::kDropAll, uint64_t seed = 0) {
    cut_at_ = mutating_op;
    cut_mode_ = mode;
    cut_seed_ = seed;
  }
  void ClearFaults() {
    fail_at_.reset();
    cut_at_.reset();
  }

  uint64_t ops() const { return ops_; }
  uint64_t mutating_ops() const { return mutating_ops_; }
  uint64_t reads() const { return reads_; }
  uint64_t writes() const { return writes_; }
  uint64_t flushes() const { return flushes_; }
  uint64_t discards() const { return discards_; }
  bool power_cut() const { return power_cut_; }

 private:
  friend class FaultDevice;
  std::optional<uint64_t> fail_at_;
  Code fail_code_ = Code::kIoError;
  bool fail_sticky_ = false;
  std::optional<uint64_t> cut_at_;
  CutMode cut_mode_ = CutMode::kDropAll;
  uint64_t cut_seed_ = 0;

  uint64_t ops_ = 0, mutating_ops_ = 0, reads_ = 0, writes_ = 0, flushes_ = 0, discards_ = 0;
  bool power_cut_ = false;
};

class FaultDevice : public PassthroughDevice {
 public:
  FaultDevice(std::unique_ptr<BlockDevice> inner, std::shared_ptr<FaultController> ctl);

  const std::shared_ptr<FaultController>& controller() const { return ctl_; }

 protected:
  Status DoRead(uint64_t offset, std::span<uint8_t> out) override;
  Status DoWrite(uint64_t offset, std::span<const uint8_t> data) override;
  Status DoFlush() override;
  Status DoDiscard(uint64_t offset, uint64_t length) override;
  Status DoWriteZeroes(uint64_t offset, uint64_t length) override;

 private:
  // Counts the op; returns non-OK if it must fail (and performs the power
  // cut when this is the chosen mutating op; `torn` is the data the
  // interrupted write would have landed, for kTearLast).
  Status Admit(bool mutating, uint64_t offset, std::span<const uint8_t> torn);
  // Records pre-images of [offset, offset+length) before it is overwritten.
  Status Remember(uint64_t offset, uint64_t length);
  void RecordVersion(uint64_t offset, std::span<const uint8_t> data);
  Status PowerCut(uint64_t offset, std::span<const uint8_t> torn);

  std::shared_ptr<FaultController> ctl_;
  // Per unflushed block: its content at the last flush, then each version
  // written since (for kRandomSubset).
  std::map<uint64_t, std::vector<std::vector<uint8_t>>> unflushed_;
};

}  // namespace stack

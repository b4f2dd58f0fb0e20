// WriteBehindDevice: a decorator that performs writes on its own worker
// thread, so whoever writes (a file system being populated) goes on with
// its next work while the layers below (encryption, the pool, the store)
// handle the last writes. On two cores this overlaps reading and packing
// source files with encrypting and storing them.
//
// Behaviour, as seen by the caller:
//   - Write copies the data into a queue and returns (first blocking while
//     more than max_pending_bytes are queued); WriteBuffer queues the
//     caller's buffer itself and hands back a spare one. Queued writes
//     reach the device below in order, one at a time.
//   - Read returns what the last writes wrote without waiting for them:
//     ranges still queued are served from the queue; the rest is read
//     below and the queued data laid over it, oldest first.
//   - Flush, Discard, WriteZeroes and AllocatedExtents first wait for the
//     whole queue, then run below: Flush is the durability point, as for
//     any device.
//   - A queued write that fails makes the device broken: the queue is
//     dropped and every later call returns that first error (same code,
//     naming the write). So an error surfaces one call late, and always by
//     the next Flush.
//   - Destruction waits for the queue; an error met then is lost, so
//     callers Flush before destroying a device whose writes matter.
// Geometry and capabilities are the inner device's, taken at construction
// (a resize of the inner device underneath is not seen).
//
// Thread-safety: one caller at a time, like every BlockDevice; the worker
// is internal. The inner device is only ever called by one thread at a
// time (the worker or the caller).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "block/block_device.h"

namespace stack {

class WriteBehindDevice final : public BlockDevice {
 public:
  // REQUIRES: inner != nullptr.
  explicit WriteBehindDevice(std::unique_ptr<BlockDevice> inner,
                             size_t max_pending_bytes = 32u << 20);
  ~WriteBehindDevice() override;
  WriteBehindDevice(const WriteBehindDevice&) = delete;
  WriteBehindDevice& operator=(const WriteBehindDevice&) = delete;

  uint32_t block_size() const override { return block_size_; }
  uint64_t block_count() const override { return block_count_; }
  DeviceCapabilities capabilities() const override { return caps_; }
  std::string describe() const override;

  // Waits until every queued write has reached the device below; returns
  // the first error met (as every later call would). Does not flush the
  // device below: for callers that want the writes done, not durable.
  Status Drain();

 protected:
  Status DoRead(uint64_t offset, std::span<uint8_t> out) override;
  Status DoWrite(uint64_t offset, std::span<const uint8_t> data) override;
  Status DoWriteBuffer(uint64_t offset, std::vector<uint8_t>& data) override;
  Status DoFlush() override;
  Status DoDiscard(uint64_t offset, uint64_t length) override;
  Status DoWriteZeroes(uint64_t offset, uint64_t length) override;
  Result<std::vector<Extent>> DoAllocatedExtents(uint64_t offset, uint64_t length) override;

 private:
  struct Pending {
    uint64_t offset = 0;
    std::vector<uint8_t> data;
  };
  void Worker();
  // Waits until `bytes` more fit in the queue; then moves a spare buffer
  // (the largest, if `largest`) into *spare, if there is one.
  Status WaitForRoom(size_t bytes, bool largest, std::vector<uint8_t>* spare);
  Status Enqueue(uint64_t offset, std::vector<uint8_t> data);
  // Waits until nothing is queued or running; the first error, if any.
  // On OK returns with `lower` holding lower_mu_.
  Status DrainLocked(std::unique_lock<std::mutex>& lower);

  std::unique_ptr<BlockDevice> inner_;
  const size_t max_pending_;
  const uint32_t block_size_;
  const uint64_t block_count_;
  const DeviceCapabilities caps_;
  mutable std::mutex lower_mu_;  // held while calling inner_; taken before mu_
  // Readers waiting for lower_mu_: the worker steps aside between slices.
  std::atomic<int> readers_waiting_{0};
  static constexpr size_t kSliceBytes = 1u << 20;
  std::mutex mu_;                // guards everything below
  std::condition_variable changed_;
  std::deque<Pending> queue_;    // front: being written (while the worker runs), then queued
  std::vector<std::vector<uint8_t>> spare_;  // buffers to reuse
  size_t spare_bytes_ = 0;                    // their capacity, at most max_pending_
  size_t queued_bytes_ = 0;
  Status error_;
  bool stop_ = false;
  std::thread worker_;  // last: starts once the rest is initialised
};

}  // namespace stack

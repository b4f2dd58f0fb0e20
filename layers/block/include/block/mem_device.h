// MemDevice: a sparse in-memory BlockDevice, the standard fake for tests.
//
// Blocks never written read as zeros; Discard frees them (reads zeros
// after). The block store is held by a shared MemStorage so a test can
// "power cycle" a device: destroy it (or the stack above it) and attach a
// new MemDevice to the same storage. persistent is reported true for that
// reason.
//
// Thread-safety: calls on the devices of one storage may come from several
// threads: reads share the storage's lock, writes, discards and resizes
// take it alone (a pool reads its store outside its own lock while it
// writes other blocks, or the same ones, under it).
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <shared_mutex>
#include <vector>

#include "block/block_device.h"

namespace stack {

struct MemStorage {
  uint32_t block_size = 0;
  std::atomic<uint64_t> block_count = 0;
  std::map<uint64_t, std::vector<uint8_t>> blocks;  // block index -> content
  mutable std::shared_mutex mu;  // guards blocks (see Thread-safety)

  MemStorage() = default;
  // A deep copy (for crash tests that restart from a saved state).
  MemStorage(const MemStorage& o) {
    std::shared_lock<std::shared_mutex> lock(o.mu);
    block_size = o.block_size;
    block_count = o.block_count.load();
    blocks = o.blocks;
  }
  MemStorage& operator=(const MemStorage&) = delete;
  std::shared_ptr<MemStorage> Clone() const { return std::make_shared<MemStorage>(*this); }
};

class MemDevice : public BlockDevice {
 public:
  // REQUIRES: block_size is a power of two >= 512.
  MemDevice(uint32_t block_size, uint64_t block_count);
  explicit MemDevice(std::shared_ptr<MemStorage> storage);

  uint32_t block_size() const override { return storage_->block_size; }
  uint64_t block_count() const override { return storage_->block_count; }
  DeviceCapabilities capabilities() const override;
  std::string describe() const override { return "memory device"; }

  const std::shared_ptr<MemStorage>& storage() const { return storage_; }
  // Grows or shrinks the device; shrinking drops the tail blocks.
  Status Resize(uint64_t new_block_count);
  // Number of blocks currently holding data.
  uint64_t allocated_blocks() const {
    std::shared_lock<std::shared_mutex> lock(storage_->mu);
    return storage_->blocks.size();
  }

 protected:
  Status DoRead(uint64_t offset, std::span<uint8_t> out) override;
  Status DoWrite(uint64_t offset, std::span<const uint8_t> data) override;
  Status DoFlush() override { return Status::Ok(); }
  Status DoDiscard(uint64_t offset, uint64_t length) override;
  Status DoWriteZeroes(uint64_t offset, uint64_t length) override {
    return DoDiscard(offset, length);
  }
  Result<std::vector<Extent>> DoAllocatedExtents(uint64_t offset, uint64_t length) override;

 private:
  std::shared_ptr<MemStorage> storage_;
};

}  // namespace stack

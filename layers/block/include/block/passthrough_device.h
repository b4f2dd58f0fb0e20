// PassthroughDevice: forwards every call to the device below it unchanged.
//
// This is the template for a new layer. To write one:
//   1. derive from PassthroughDevice (or copy this file if the geometry differs);
//   2. override only the Do* hooks whose behaviour changes (an encryption
//      layer overrides DoRead/DoWrite and refuses DoDiscard/DoWriteZeroes
//      rather than let plaintext zeros through);
//   3. keep capabilities() honest: a layer may only weaken the promises of
//      the device below, never strengthen them without doing the work;
//   4. register the device in the contract suite (tests/support/contract.h).
// The base class has already checked alignment, bounds and read-only before
// any hook runs.
//
// Thread-safety: as the inner device.
#pragma once

#include <memory>

#include "block/block_device.h"

namespace stack {

class PassthroughDevice : public BlockDevice {
 public:
  // REQUIRES: inner != nullptr.
  explicit PassthroughDevice(std::unique_ptr<BlockDevice> inner) : inner_(std::move(inner)) {}

  uint32_t block_size() const override { return inner_->block_size(); }
  uint64_t block_count() const override { return inner_->block_count(); }
  DeviceCapabilities capabilities() const override { return inner_->capabilities(); }
  std::string describe() const override { return inner_->describe(); }

  BlockDevice& inner() { return *inner_; }
  // Gives the inner device back; this object must not be used afterwards.
  std::unique_ptr<BlockDevice> ReleaseInner() { return std::move(inner_); }

 protected:
  Status DoRead(uint64_t offset, std::span<uint8_t> out) override {
    return inner_->Read(offset, out);
  }
  Status DoWrite(uint64_t offset, std::span<const uint8_t> data) override {
    return inner_->Write(offset, data);
  }
  // WriteBuffer is deliberately not forwarded: it reaches DoWrite (the
  // base's default), so a subclass that intercepts DoWrite (to count,
  // fault or transform) sees every write. A layer wanting the device
  // below's zero-copy path overrides DoWriteBuffer itself.
  Status DoFlush() override { return inner_->Flush(); }
  Status DoDiscard(uint64_t offset, uint64_t length) override {
    return inner_->Discard(offset, length);
  }
  Status DoWriteZeroes(uint64_t offset, uint64_t length) override {
    return inner_->WriteZeroes(offset, length);
  }
  Result<std::vector<Extent>> DoAllocatedExtents(uint64_t offset, uint64_t length) override {
    return inner_->AllocatedExtents(offset, length);
  }

 private:
  std::unique_ptr<BlockDevice> inner_;
};

}  // namespace stack

#include "block/mem_device.h"

#include <cstring>
#include <mutex>

namespace stack {

MemDevice::MemDevice(uint32_t block_size, uint64_t block_count)
    : storage_(std::make_shared<MemStorage>()) {
  storage_->block_size = block_size;
  storage_->block_count = block_count;
}

MemDevice::MemDevice(std::shared_ptr<MemStorage> storage) : storage_(std::move(storage)) {}

DeviceCapabilities MemDevice::capabilities() const {
  DeviceCapabilities c;
  c.unwritten_reads_zero = true;
  c.discard_supported = true;
  c.discard_zeroes = true;
  c.holes_read_zero = true;
  c.persistent = true;
  return c;
}

Status MemDevice::Resize(uint64_t new_block_count) {
  std::unique_lock<std::shared_mutex> lock(storage_->mu);
  auto& blocks = storage_->blocks;
  blocks.erase(blocks.lower_bound(new_block_count), blocks.end());
  storage_->block_count = new_block_count;
  return Status::Ok();
}

Status MemDevice::DoRead(uint64_t offset, std::span<uint8_t> out) {
  std::shared_lock<std::shared_mutex> lock(storage_->mu);
  const uint32_t bs = block_size();
  uint64_t first = offset / bs;
  auto& blocks = storage_->blocks;
  for (size_t i = 0; i < out.size() / bs; ++i) {
    auto it = blocks.find(first + i);
    if (it == blocks.end()) {
      std::memset(out.data() + i * bs, 0, bs);
    } else {
      std::memcpy(out.data() + i * bs, it->second.data(), bs);
    }
  }
  return Status::Ok();
}

Status MemDevice::DoWrite(uint64_t offset, std::span<const uint8_t> data) {
  std::unique_lock<std::shared_mutex> lock(storage_->mu);
  const uint32_t bs = block_size();
  uint64_t first = offset / bs;
  for (size_t i = 0; i < data.size() / bs; ++i) {
    auto& b = storage_->blocks[first + i];
    b.assign(data.begin() + i * bs, data.begin() + (i + 1) * bs);
  }
  return Status::Ok();
}

Status MemDevice::DoDiscard(uint64_t offset, uint64_t length) {
  std::unique_lock<std::shared_mutex> lock(storage_->mu);
  const uint32_t bs = block_size();
  auto& blocks = storage_->blocks;
  blocks.erase(blocks.lower_bound(offset / bs), blocks.lower_bound((offset + length) / bs));
  return Status::Ok();
}

Result<std::vector<Extent>> MemDevice::DoAllocatedExtents(uint64_t offset, uint64_t length) {
  std::shared_lock<std::shared_mutex> lock(storage_->mu);
  const uint32_t bs = block_size();
  std::vector<Extent> out;
  auto& blocks = storage_->blocks;
  for (auto it = blocks.lower_bound(offset / bs);
       it != blocks.end() && it->first < (offset + length) / bs; ++it) {
    uint64_t at = it->first * bs;
    if (!out.empty() && out.back().end() == at) {
      out.back().length += bs;
    } else {
      out.push_back(Extent{at, bs});
    }
  }
  return out;
}

}  // namespace stack

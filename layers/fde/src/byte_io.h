// Byte-granular reads and writes on a BlockDevice, for header structures whose
// offsets need not match the device's block size. Unaligned edges are handled
// by reading the covering blocks (and, for writes, merging and writing them
// back). Thread-safety: as the device.
#pragma once

#include <span>
#include <vector>

#include "block/block_device.h"

namespace stack::fde::internal {

inline Status ReadAt(BlockDevice& dev, uint64_t offset, std::span<uint8_t> out) {
  const uint64_t bs = dev.block_size();
  if (offset % bs == 0 && out.size() % bs == 0) return dev.Read(offset, out);
  const uint64_t a0 = offset / bs * bs;
  const uint64_t a1 = (offset + out.size() + bs - 1) / bs * bs;
  if (a1 > dev.size_bytes()) return Status::OutOfRange("read past end of " + dev.describe());
  std::vector<uint8_t> buf(a1 - a0);
  RETURN_IF_ERROR(dev.Read(a0, buf));
  std::copy_n(buf.begin() + long(offset - a0), out.size(), out.begin());
  return Status::Ok();
}

inline Status WriteAt(BlockDevice& dev, uint64_t offset, std::span<const uint8_t> data) {
  const uint64_t bs = dev.block_size();
  if (offset % bs == 0 && data.size() % bs == 0) return dev.Write(offset, data);
  const uint64_t a0 = offset / bs * bs;
  const uint64_t a1 = (offset + data.size() + bs - 1) / bs * bs;
  if (a1 > dev.size_bytes()) return Status::OutOfRange("write past end of " + dev.describe());
  std::vector<uint8_t> buf(a1 - a0);
  RETURN_IF_ERROR(dev.Read(a0, buf));
  std::copy(data.begin(), data.end(), buf.begin() + long(offset - a0));
  return dev.Write(a0, buf);
}

// Writes zeros over [offset, offset+len) (WriteZeroes where aligned).
inline Status ZeroAt(BlockDevice& dev, uint64_t offset, uint64_t len) {
  const uint64_t bs = dev.block_size();
  if (offset % bs == 0 && len % bs == 0) return dev.WriteZeroes(offset, len);
  std::vector<uint8_t> zeros(len);
  return WriteAt(dev, offset, zeros);
}

}  // namespace stack::fde::internal

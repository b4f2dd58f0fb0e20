#include "block/block_device.h"

#include <algorithm>
#include <vector>

namespace stack {

Status BlockDevice::CheckRange(uint64_t offset, uint64_t length, const char* op) const {
  const uint64_t bs = block_size();
  if (offset % bs != 0 || length % bs != 0) {
    return Status::InvalidArgument(std::string(op) + " at " + std::to_string(offset) + "+" +
                                   std::to_string(length) + " is not aligned to block size " +
                                   std::to_string(bs) + " on " + describe());
  }
  const uint64_t size = size_bytes();
  if (offset > size || length > size - offset) {
    return Status::OutOfRange(std::string(op) + " at " + std::to_string(offset) + "+" +
                              std::to_string(length) + " is past the end (" +
                              std::to_string(size) + " bytes) of " + describe());
  }
  return Status::Ok();
}

Status BlockDevice::Read(uint64_t offset, std::span<uint8_t> out) {
  RETURN_IF_ERROR(CheckRange(offset, out.size(), "read"));
  if (out.empty()) return Status::Ok();
  return DoRead(offset, out);
}

Status BlockDevice::Write(uint64_t offset, std::span<const uint8_t> data) {
  RETURN_IF_ERROR(CheckRange(offset, data.size(), "write"));
  if (capabilities().read_only) return Status::ReadOnly("write to read-only " + describe());
  if (data.empty()) return Status::Ok();
  return DoWrite(offset, data);
}

Status BlockDevice::WriteBuffer(uint64_t offset, std::vector<uint8_t>& data) {
  RETURN_IF_ERROR(CheckRange(offset, data.size(), "write"));
  if (capabilities().read_only) return Status::ReadOnly("write to read-only " + describe());
  if (data.empty()) return Status::Ok();
  return DoWriteBuffer(offset, data);
}

Status BlockDevice::DoWriteBuffer(uint64_t offset, std::vector<uint8_t>& data) {
  return DoWrite(offset, data);
}

Status BlockDevice::Flush() { return DoFlush(); }

Status BlockDevice::Discard(uint64_t offset, uint64_t length) {
  RETURN_IF_ERROR(CheckRange(offset, length, "discard"));
  if (capabilities().read_only) return Status::ReadOnly("discard on read-only " + describe());
  if (length == 0) return Status::Ok();
  return DoDiscard(offset, length);
}

Status BlockDevice::WriteZeroes(uint64_t offset, uint64_t length) {
  RETURN_IF_ERROR(CheckRange(offset, length, "write-zeroes"));
  if (capabilities().read_only) return Status::ReadOnly("write-zeroes on read-only " + describe());
  if (length == 0) return Status::Ok();
  return DoWriteZeroes(offset, length);
}

Result<std::vector<Extent>> BlockDevice::AllocatedExtents(uint64_t offset, uint64_t length) {
  RETURN_IF_ERROR(CheckRange(offset, length, "allocation query"));
  if (length == 0) return std::vector<Extent>{};
  return DoAllocatedExtents(offset, length);
}

Status BlockDevice::DoWriteZeroes(uint64_t offset, uint64_t length) {
  // Bounded buffer: at most 1 MiB (rounded to whole blocks) at a time.
  const uint64_t bs = block_size();
  const uint64_t chunk = std::max<uint64_t>(bs, (uint64_t{1} << 20) / bs * bs);
  std::vector<uint8_t> zeros(std::min(chunk, length), 0);
  while (length > 0) {
    const uint64_t n = std::min<uint64_t>(zeros.size(), length);
    RETURN_IF_ERROR(DoWrite(offset, std::span<const uint8_t>(zeros.data(), n)));
    offset += n;
    length -= n;
  }
  return Status::Ok();
}

Result<std::vector<Extent>> BlockDevice::DoAllocatedExtents(uint64_t offset, uint64_t length) {
  return std::vector<Extent>{Extent{offset, length}};
}

}  // namespace stack

#include "stack/bulk_data.h"

#include <algorithm>
#include <thread>

#include "block/write_behind_device.h"

namespace stack::compose {

unsigned BulkCryptThreads(bool writable) {
  if (writable) return 1;
  return std::clamp(std::thread::hardware_concurrency(), 1u, 4u);
}

std::unique_ptr<BlockDevice> BulkWriteDevice(std::unique_ptr<BlockDevice> dev,
                                             size_t queue_bytes) {
  return std::make_unique<WriteBehindDevice>(std::move(dev), queue_bytes);
}

Result<CopyReport> CopySparseBehind(BlockDevice& src, std::unique_ptr<BlockDevice> dst,
                                    const CopyOptions& opts) {
  WriteBehindDevice wb(std::move(dst));
  Result<CopyReport> r = CopySparse(src, wb, opts);
  const Status drained = wb.Drain();  // errors of writes still queued
  RETURN_IF_ERROR(r.status());
  RETURN_IF_ERROR(drained);
  return r;
}

}  // namespace stack::compose

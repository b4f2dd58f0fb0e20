// Export: one served pool entry (volume or snapshot) in one view, as the NBD
// commands see it. Free of nbdkit: plugin.cc maps these calls and their
// Status to nbdkit's callbacks and errnos, and nothing here knows the pool
// is a file (a device factory hands out the entry's BlockDevices).
//
// Views (spec/serve.md):
//   plain   the decrypted device (fde's CryptDevice over the pool volume);
//           an unencrypted volume is served as it is;
//   stored  the pool volume itself (the LUKS2 container, byte for byte).
//
// Concurrency: every method may be called from any thread at once. A
// BlockDevice is single-threaded (block_device.h), so each request leases
// its own device from a free list (made by the factory when none is free):
// XTS runs on the calling thread, outside the pool's lock, and requests on
// one export proceed in parallel. Devices of one entry are coherent because
// they hold no data of their own (the pool's volume device is stateless, the
// CryptDevice's staging buffer is per request).
// Requests aligned to write_unit() run under a shared lock. A request that
// is not (a read-modify-write of our sectors, or of pool blocks larger than
// the encryption sector, which CryptDevice merges itself) takes the lock
// exclusively, so no other write can land between its read and its write.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <string>
#include <vector>

#include "block/block_device.h"
#include "block/status.h"

namespace stack::nbd {

enum class View { kPlain, kStored };

// Makes one more device of the export (same entry, same view, same key).
using DeviceFactory = std::function<Result<std::unique_ptr<BlockDevice>>()>;

struct ExportParams {
  std::string name;
  bool read_only = false;
  // Trim frees pool blocks (stored view; plain view with allow-discards).
  bool can_trim = false;
  // Block size of the device below the served one (the pool's block), which
  // a served device with smaller blocks read-modify-writes: writes aligned
  // to it need no exclusion. 0 = none below.
  uint32_t lower_block_size = 0;
};

class Export {
 public:
  // `first` is a device the caller already made (and checked); it seeds the
  // free list. REQUIRES: first != nullptr.
  Export(ExportParams params, std::unique_ptr<BlockDevice> first, DeviceFactory factory);
  Export(const Export&) = delete;
  Export& operator=(const Export&) = delete;

  const std::string& name() const { return params_.name; }
  bool read_only() const { return params_.read_only; }
  bool can_trim() const { return params_.can_trim && !params_.read_only; }
  // Zeroing is as fast as a discard: holes read as zeros (stored view).
  bool fast_zero() const { return caps_.holes_read_zero && caps_.discard_zeroes; }
  uint64_t size() const { return size_; }
  // The served device's block: requests aligned to it need no read-modify-write.
  uint32_t unit() const { return unit_; }
  // Alignment at which writes need no exclusion (>= unit()).
  uint32_t write_unit() const { return write_unit_; }
  // Unmapped ranges read as zeros (reported hole+zero; else hole only).
  bool holes_read_zero() const { return caps_.holes_read_zero; }

  // Any byte range inside [0, size()); unaligned edges are read-modify-written.
  Status Read(uint64_t offset, std::span<uint8_t> out);
  Status Write(uint64_t offset, std::span<const uint8_t> data, bool fua);
  // The range reads as zeros afterwards. The device chooses how (the pool
  // maps holes; the plain view writes encrypted zeros, since an unmapped
  // range decrypts to garbage there).
  Status Zero(uint64_t offset, uint64_t length, bool fua);
  // Discards the whole units inside the range (a hint; edges are left).
  Status Trim(uint64_t offset, uint64_t length, bool fua);
  // Commits the pool: every write acknowledged before it, on any
  // connection and any export, is durable on OK.
  Status Flush();
  // Data-holding extents covering [offset, offset + length), widened to
  // whole units, sorted, clipped to size().
  Result<std::vector<Extent>> Allocated(uint64_t offset, uint64_t length);

 private:
  class Lease;
  Result<Lease> Acquire();
  void Release(std::unique_ptr<BlockDevice> dev);
  Status CheckRange(uint64_t offset, uint64_t length, bool write) const;
  bool WriteAligned(uint64_t offset, uint64_t length) const;
  // Writes `data` at an offset/length not aligned to unit(): reads the edge
  // units, merges, writes whole units. REQUIRES: rmw_mu_ held exclusively.
  Status WriteMerged(BlockDevice& dev, uint64_t offset, std::span<const uint8_t> data);

  ExportParams params_;
  DeviceFactory factory_;
  DeviceCapabilities caps_;
  uint64_t size_ = 0;
  uint32_t unit_ = 0;
  uint32_t write_unit_ = 0;

  std::shared_mutex rmw_mu_;
  std::mutex free_mu_;
  std::vector<std::unique_ptr<BlockDevice>> free_;
};

}  // namespace stack::nbd

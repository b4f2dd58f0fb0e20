// The libext2fs io_manager that routes every I/O of a filesystem to a
// stack::BlockDevice, with a small write-back cache.
//
// libext2fs opens devices by name only, so an IoBinding registers its
// context in a process-wide registry under a unique name ("stack:<n>:...")
// for exactly its lifetime (RAII); ext2fs_open2/ext2fs_initialize get that
// name and io_manager(). Any number of bindings (images) may be open at
// once. The contract libext2fs relies on (spec/fsbridge.md "io_manager"):
//   - block size starts at 1024 and changes with set_blksize; a negative
//     count means bytes; write_byte writes arbitrary byte ranges;
//   - I/O that is not aligned to the device block is read-modify-write
//     through the cache; large aligned transfers bypass it; whole-block
//     writes that follow each other into uncached blocks (file data) are
//     gathered into one run and written as one;
//   - discard is passed down only when the device supports it, and
//     advertised as zeroing only when the device promises discard_zeroes;
//     zeroout uses BlockDevice::WriteZeroes (never a discard), so a device
//     whose unwritten blocks are not zero (encryption) stays correct;
//   - flush writes back the cache, then flushes the device.
// A failed device call is returned to libext2fs as an errno-style code and
// its Status is kept; TakeLastError() hands it to the error boundary.
//
// Thread-safety: one binding per filesystem, used by one thread at a time.
#pragma once

#include <ext2fs/ext2fs.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "block/block_device.h"

namespace stack::fsbridge {

class IoBinding {
 public:
  // REQUIRES: device outlives the binding.
  explicit IoBinding(BlockDevice* device, size_t cache_bytes = 32 << 20);
  ~IoBinding();
  IoBinding(const IoBinding&) = delete;
  IoBinding& operator=(const IoBinding&) = delete;

  const std::string& name() const { return name_; }
  static io_manager manager();

  // The first device error since the last call (OK if none).
  Status TakeLastError();
  // Writes every dirty cached block and the gathered run to the device (no
  // device flush).
  Status WriteBack();
  // Writes `data` at byte `offset` straight to the device, which may take
  // the buffer itself and hand back another in *data (BlockDevice::
  // WriteBuffer; a write-behind device does, so a file's data run is never
  // copied on the way down). Cached units of the range are dropped (the
  // write replaces them). Offset and size not whole cache units: written
  // with a copy, through the cache rules, *data unchanged; so is a run
  // under 64 KiB of uncached units, which joins the gathered run of
  // adjacent small writes (many small files, one device write). The bulk
  // data path (DataWriter) writes its runs with this.
  Status WriteBuffer(uint64_t offset, std::vector<uint8_t>* data);

  struct Context;

 private:
  std::string name_;
  std::unique_ptr<Context> ctx_;
};

}  // namespace stack::fsbridge

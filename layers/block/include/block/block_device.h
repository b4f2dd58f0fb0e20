// BlockDevice: the one contract every layer of stack implements and consumes.
//
// A BlockDevice is an array of block_count() blocks of block_size() bytes
// (a power of two, fixed for the life of the object). Addresses and lengths
// are in BYTES and must be multiples of block_size().
//
// The public methods are non-virtual: they check the contract once, here,
// and then call the protected Do* hooks, so every implementation reports
// misuse identically:
//   - offset or length not a multiple of block_size()  -> InvalidArgument
//   - any byte of [offset, offset+len) past the end      -> OutOfRange
//   - Write/Discard/WriteZeroes on a read-only device    -> ReadOnly
//   - zero-length requests are OK and do nothing.
//
// Durability: Write() returning OK means the data is readable by later
// Read()s on this object; it is durable only after a later Flush() returns
// OK. Flush is a barrier: every write acknowledged before it is durable when
// it returns.
//
// Discard is a hint that the range is no longer needed. Whether a discarded
// range then reads as zeros is stated by capabilities().discard_zeroes; when
// false, its content is unspecified (but reading it is not an error).
//
// Allocation: AllocatedExtents() reports which ranges hold data (like
// SEEK_DATA/SEEK_HOLE or `qemu-img map`). Ranges not reported read as zeros
// when capabilities().holes_read_zero, so sparse copies can skip them. A
// device that cannot tell reports the whole range as data (the default).
//
// Ownership: a layer owns the device below it (std::unique_ptr).
// Thread-safety: none unless an implementation says otherwise; callers
// serialise access to one device.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "block/status.h"

namespace stack {

// A byte range [offset, offset + length).
struct Extent {
  uint64_t offset = 0;
  uint64_t length = 0;
  uint64_t end() const { return offset + length; }
  bool operator==(const Extent&) const = default;
};

struct DeviceCapabilities {
  bool read_only = false;
  // Blocks never written since creation read as zeros.
  bool unwritten_reads_zero = false;
  // Discard actually releases space (is not a no-op).
  bool discard_supported = false;
  // After Discard(r), Read(r) returns zeros.
  bool discard_zeroes = false;
  // Ranges not reported by AllocatedExtents() read as zeros.
  bool holes_read_zero = false;
  // Data survives destruction of this object (file, pool volume).
  bool persistent = false;
};

class BlockDevice {
 public:
  BlockDevice() = default;
  BlockDevice(const BlockDevice&) = delete;
  BlockDevice& operator=(const BlockDevice&) = delete;
  virtual ~BlockDevice() = default;

  virtual uint32_t block_size() const = 0;
  virtual uint64_t block_count() const = 0;
  uint64_t size_bytes() const { return block_count() * block_size(); }
  virtual DeviceCapabilities capabilities() const = 0;
  // Human-readable identity for error messages ("file:/x/pool", "volume vm1").
  virtual std::string describe() const = 0;

  // Reads out.size() bytes at offset. On error the content of `out` is
  // unspecified.
  Status Read(uint64_t offset, std::span<uint8_t> out);
  // Writes data at offset. On error, which blocks of the range were
  // written is unspecified unless the implementation says otherwise.
  Status Write(uint64_t offset, std::span<const uint8_t> data);
  // Write, for a caller done with its buffer: the device may keep `data`'s
  // storage (to write it later) and hand back another buffer in its place,
  // saving a copy. Afterwards `data` holds a buffer of unspecified size and
  // content, for the caller to reuse (clear and refill) or drop.
  Status WriteBuffer(uint64_t offset, std::vector<uint8_t>& data);
  // Barrier: every write acknowledged before the call is durable on OK.
  Status Flush();
  // Hint that [offset, offset+length) is unused. See capabilities().
  Status Discard(uint64_t offset, uint64_t length);
  // Makes [offset, offset+length) read as zeros. The default writes zero
  // buffers; devices override it with something cheaper where they can
  // (a pool maps holes). Never implemented as a Discard whose zeroing the
  // device does not promise.
  Status WriteZeroes(uint64_t offset, uint64_t length);
  // The data-holding extents intersecting [offset, offset+length), sorted,
  // non-overlapping, clipped to the range, block-aligned.
  Result<std::vector<Extent>> AllocatedExtents(uint64_t offset, uint64_t length);

 protected:
  // Hooks called after the base class checked alignment, bounds and
  // read-only; lengths are non-zero.
  virtual Status DoRead(uint64_t offset, std::span<uint8_t> out) = 0;
  virtual Status DoWrite(uint64_t offset, std::span<const uint8_t> data) = 0;
  // Default: DoWrite(offset, data), leaving the buffer as it was.
  virtual Status DoWriteBuffer(uint64_t offset, std::vector<uint8_t>& data);
  virtual Status DoFlush() = 0;
  virtual Status DoDiscard(uint64_t offset, uint64_t length) = 0;
  virtual Status DoWriteZeroes(uint64_t offset, uint64_t length);
  virtual Result<std::vector<Extent>> DoAllocatedExtents(uint64_t offset, uint64_t length);

 private:
  Status CheckRange(uint64_t offset, uint64_t length, const char* op) const;
};

}  // namespace stack

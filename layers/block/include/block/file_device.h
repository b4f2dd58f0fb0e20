// FileDevice: a BlockDevice over a regular file (or a block device node).
//
// pread/pwrite (EINTR and short transfers handled), fdatasync on Flush,
// discard and write-zeroes by punching holes (FALLOC_FL_PUNCH_HOLE, so the
// file stays sparse and holes read as zeros), the allocation query by
// SEEK_DATA/SEEK_HOLE. With `direct` the file is opened O_DIRECT and
// unaligned caller buffers go through an aligned bounce buffer.
//
// The file size must be a multiple of the block size; Open refuses other
// files with InvalidArgument rather than hiding a tail.
//
// Thread-safety: Read/Write/AllocatedExtents may run concurrently from
// several threads (positional I/O, no shared cursor), and with one Resize
// that grows the file (I/O below the old size); a shrinking Resize may not.
// The flush-behind thread (if any) is internal; destruction joins it.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "block/block_device.h"

namespace stack {

struct FileDeviceOptions {
  uint32_t block_size = 4096;
  bool read_only = false;
  bool direct = false;  // O_DIRECT
  // Take an exclusive lock (block/file_lock.h); Busy if someone holds it.
  bool lock = false;
  // Write-behind: a write of at least this many bytes starts its writeback
  // at once (sync_file_range, a hint), so a large streaming write overlaps
  // with the disk and a later Flush has little left to wait for. 0 = off
  // (the kernel's own dirty-page thresholds decide).
  uint64_t write_behind_bytes = 0;
  // Flush-behind: once this many bytes of large writes (64 KiB or more; small
  // ones are the kernel's business) arrived since the last one, a background
  // thread makes them durable (fdatasync) while writing goes on, with or
  // without write-behind. A Flush must wait until
  // the device has persisted everything since the previous one, and a
  // disk's cache flush takes longer the more it holds (measured here: ~0.37 s
  // per GiB, all at the flush): flushed behind, the Flush finds little left.
  // A background fdatasync that fails fails every later Flush (the error is
  // reported once per open file, and the pages may be lost). 0 = off.
  uint64_t flush_behind_bytes = 0;
  // Read-only: a file whose size is not whole blocks is taken with its size
  // rounded up to the next block, the bytes past its end reading as zeros
  // (import takes an image of any size). Without it such a file is refused.
  bool zero_pad_tail = false;
};

// Starts writeback of [offset, offset + length) of fd (sync_file_range
// WRITE): a hint, errors ignored (they surface again at fdatasync).
void StartWriteback(int fd, uint64_t offset, uint64_t length);

class FileDevice : public BlockDevice {
 public:
  // Opens an existing file. NotFound if absent; InvalidArgument if its size
  // is not a multiple of the block size (unless zero_pad_tail).
  static Result<std::unique_ptr<FileDevice>> Open(const std::string& path,
                                                  const FileDeviceOptions& opts = {});
  // Creates a new sparse file of size_bytes (a multiple of the block size).
  // AlreadyExists if the path exists and !overwrite.
  static Result<std::unique_ptr<FileDevice>> Create(const std::string& path, uint64_t size_bytes,
                                                    const FileDeviceOptions& opts = {},
                                                    bool overwrite = false);
  ~FileDevice() override;

  uint32_t block_size() const override { return block_size_; }
  uint64_t block_count() const override { return block_count_.load(std::memory_order_relaxed); }
  DeviceCapabilities capabilities() const override;
  std::string describe() const override { return "file " + path_; }

  const std::string& path() const { return path_; }
  int fd() const { return fd_; }
  // Background flushes (flush_behind_bytes) completed so far.
  uint64_t flushes_behind() const;
  // Changes the file size (sparse growth, truncating shrink).
  // REQUIRES: new_size_bytes is a multiple of block_size().
  Status Resize(uint64_t new_size_bytes);

 protected:
  Status DoRead(uint64_t offset, std::span<uint8_t> out) override;
  Status DoWrite(uint64_t offset, std::span<const uint8_t> data) override;
  Status DoFlush() override;
  Status DoDiscard(uint64_t offset, uint64_t length) override;
  Status DoWriteZeroes(uint64_t offset, uint64_t length) override;
  Result<std::vector<Extent>> DoAllocatedExtents(uint64_t offset, uint64_t length) override;

 private:
  FileDevice(std::string path, int fd, const FileDeviceOptions& opts, uint64_t size);
  Status PunchHole(uint64_t offset, uint64_t length, const char* op);
  class FlushBehind;

  std::string path_;
  int fd_;
  uint32_t block_size_;
  // Atomic: reads and writes of lower offsets may run while a Resize grows
  // the file (a pool's reads run outside its lock).
  std::atomic<uint64_t> block_count_;
  bool read_only_;
  bool direct_;
  uint64_t write_behind_;
  bool punch_supported_ = true;
  std::unique_ptr<FlushBehind> flush_behind_;  // null: off
};

}  // namespace stack

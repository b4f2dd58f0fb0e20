// Store: the backing store a pool lives in: a BlockDevice (the contract of
// block/block_device.h, its checks included: the pool addresses it in
// bytes, in whole blocks of block_size(), 4096 for every store here) plus
// the capabilities a pool needs beyond it.
//
// The pool logic talks only to this interface, so a distributed store (an
// RBD image, an object store) can replace the local file without touching
// the metadata code: implement the BlockDevice hooks and the capabilities
// below.
//
// Capabilities:
//   Resize   grows (or shrinks) the store; NoSpace if it cannot grow.
//   Lock     takes the store's one-writer lock (exclusive) or a reader's
//            lock (shared); Busy naming the holder when someone else has it.
//            Released when the Store is destroyed.
//   Publish  makes a store created under a temporary name visible under its
//            final one (see CreateFileStore); OK at once for other stores.
//   allocated_bytes, local_path: what the store occupies on its host.
//
// Thread-safety: the pool serialises every call but Read: reads run
// outside the pool's lock, concurrently with each other and with a Write
// (of any blocks, the same ones included: the pool's checksums catch what
// such a read got) or a growing Resize. A store must allow that (a file
// does; a store over a BlockDevice needs a device that does, as
// FileDevice and MemDevice do).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "block/block_device.h"
#include "block/status.h"

namespace stack::pool {

// How this process names itself in the holder note of the pools it locks
// ("stack fs populate"; default "a process"), e.g. "stack serve (pid 7) on
// HOST since 2026-12-03 04:10:00 UTC". Thread-safe.
void SetLockHolderName(std::string name);

class Store : public BlockDevice {
 public:
  virtual Status Resize(uint64_t new_size) = 0;
  virtual Status Lock(bool exclusive) = 0;
  // AlreadyExists (the temporary file is kept until the Store is destroyed)
  // when the final name was taken meanwhile.
  virtual Status Publish() { return Status::Ok(); }
  // Bytes the store occupies on its host (a sparse file's allocated
  // blocks, after hole punching), or nullopt when unknown.
  virtual std::optional<uint64_t> allocated_bytes() const { return std::nullopt; }
  // The local file holding the store's bytes at the same offsets, or ""
  // when there is none (a device, a remote store). Lets a caller copy
  // stored runs with the kernel's file-to-file methods (reflink,
  // copy_file_range); see Pool::StoredRuns.
  virtual std::string local_path() const { return {}; }
  // Rewrites the lock's holder note for the calling process (after a fork
  // that keeps the lock: the note named the parent). No-op without a note.
  virtual void RefreshLockNote() {}

  // Shorthands from before a Store was a BlockDevice.
  uint64_t Size() const { return size_bytes(); }
  bool read_only() const { return capabilities().read_only; }
  uint32_t io_alignment() const { return block_size(); }
};

// Opens an existing pool file. NotFound if absent. write_behind: see
// PoolOpenOptions.
Result<std::unique_ptr<Store>> OpenFileStore(const std::string& path, bool read_only,
                                             bool write_behind = true);
// Creates a new sparse pool file of size_bytes (multiple of 4096) under a
// hidden temporary name in path's directory; nothing appears at `path`
// until Publish(), which renames it there without replacing anything
// (renameat2 RENAME_NOREPLACE, else link + unlink). Destroying an
// unpublished store removes the temporary file, so a failed create leaves
// nothing behind. AlreadyExists if the path exists.
Result<std::unique_ptr<Store>> CreateFileStore(const std::string& path, uint64_t size_bytes);

// A store over any BlockDevice whose block size divides 4096 (tests put a
// MemDevice or FaultDevice here). Its size is the device's; Resize beyond it
// is NoSpace. Lock is a no-op (the device has no other users).
std::unique_ptr<Store> MakeDeviceStore(std::unique_ptr<BlockDevice> device);

}  // namespace stack::pool

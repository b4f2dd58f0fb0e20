// The bulk data path: the one place that decides how file and image data
// moves between the host and a volume, so build, `fs populate`, `fs put`,
// `fs get`, `fs extract`, import and export all run the same pipeline
// instead of each its own copy of it (issue 16 section 2).
//
// In (build, populate, put, import):
//   host reader (this thread) --> 4 MiB runs --> WriteBehindDevice
//                                                 `-> worker: encrypt + pool
//   fsbridge's DataWriter packs a file into runs of up to 4 MiB, each
//   written with one device write; the WriteBehindDevice above the
//   decrypted device takes the run and returns, so reading and packing the
//   next run overlaps encrypting and storing this one. Close/Flush drain it
//   (a queued write's error surfaces by then at the latest).
// Out (get, extract, cat, export):
//   fsbridge reads a file by its extents in runs of up to 4 MiB (one device
//   read, one decryption pass per run, on BulkCryptThreads(false) threads)
//   and reads the next run while the caller writes this one.
//
// Thread-safety: stateless functions; the devices are as BlockDevice says.
#pragma once

#include <memory>

#include "block/block_device.h"
#include "stack/sparse_copy.h"

namespace stack::compose {

// Encryption threads for a container opened for the bulk path. Writing:
// 1, because the write-behind worker already encrypts beside the reader
// (on two cores more threads only fight the reader). Reading: up to 4, the
// reader decrypts one run at a time and waits for it.
unsigned BulkCryptThreads(bool writable);

// Bytes a BulkWriteDevice queues by default: eight 4 MiB runs.
inline constexpr size_t kBulkQueueBytes = 32u << 20;

// The device a writing file system (or an image copy) is put on: `dev`
// (the decrypted volume, or the plain one) behind a WriteBehindDevice that
// queues up to `queue_bytes`. Every queued buffer is fresh memory the first
// time (page faults: ~5 us each in a VM), so a writer of small pieces takes
// a smaller queue.
// REQUIRES: dev != nullptr.
std::unique_ptr<BlockDevice> BulkWriteDevice(std::unique_ptr<BlockDevice> dev,
                                             size_t queue_bytes = kBulkQueueBytes);

// CopySparse(src, dst) with dst behind a WriteBehindDevice: reading (and
// verifying or decrypting) src on this thread overlaps writing dst. Every
// write has reached dst when this returns (flushed when opts.flush); the
// first error of either side is returned. dst is destroyed on return.
Result<CopyReport> CopySparseBehind(BlockDevice& src, std::unique_ptr<BlockDevice> dst,
                                    const CopyOptions& opts);

}  // namespace stack::compose

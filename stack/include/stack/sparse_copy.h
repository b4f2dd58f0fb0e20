// Sparse device-to-device copy: the engine behind export and import.
//
// Only the extents the source reports as allocated are read; within them,
// all-zero blocks are not written when the destination already reads zeros
// there (a fresh thin volume or a new sparse file), so holes stay holes end
// to end. When the destination does not promise zeros, zero ranges are
// written with WriteZeroes (which an encrypting layer encrypts).
//
// The method used is reported in CopyReport::method; it is never changed
// behind the caller's back.
//
// Thread-safety: none; src and dst are used from the calling thread only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "block/block_device.h"
#include "stack/progress.h"

namespace stack::compose {

struct CopyOptions {
  // Bytes per read/write; rounded to whole blocks of both devices.
  uint64_t chunk_bytes = 1 << 20;
  // The destination reads zeros wherever it was not written (skip zeros).
  // Default: taken from dst.capabilities().unwritten_reads_zero.
  std::optional<bool> dst_reads_zero;
  Progress* progress = nullptr;
  // Flush dst at the end (the copy is durable on return).
  bool flush = true;
};

struct CopyReport {
  std::string method;           // e.g. "sparse-extent-copy", "reflink"
  std::string method_note;      // why a better method was not used (auto), or ""
  uint64_t size_bytes = 0;      // logical size copied
  uint64_t allocated_bytes = 0; // bytes the source reported as data
  uint64_t written_bytes = 0;   // bytes written to dst (data copied, by us or the kernel)
  uint64_t shared_bytes = 0;    // bytes reflinked: dst shares the source's extents, nothing written
  uint64_t zero_bytes = 0;      // data-extent bytes found all-zero (kept as holes)
};

// Copies all of src into the start of dst and flushes dst (opts.flush).
// A source that ends inside a block of the larger block size is copied with
// zeros to the end of that block. InvalidArgument if dst is smaller than
// that or the block sizes do not divide each other; errors from either
// device are returned with context.
Result<CopyReport> CopySparse(BlockDevice& src, BlockDevice& dst, const CopyOptions& opts = {});

}  // namespace stack::compose

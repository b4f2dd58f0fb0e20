// The alignment rule for sizes of volumes and pools, shared by every command
// (spec/composition.md "Sizes"): a size must be whole pool blocks; an
// unaligned size is refused, never rounded, and the message names the
// nearest valid sizes so the user can pick one.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>

#include "block/status.h"

namespace stack::compose {

// InvalidArgument "<what> 4097 is not a multiple of the 4096-byte block size:
// use 4096 or 8192" unless bytes is a positive multiple of unit.
// REQUIRES: unit > 0.
Status RequireWholeBlocks(uint64_t bytes, uint64_t unit, const std::string& what);

}  // namespace stack::compose

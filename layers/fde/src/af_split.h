// Anti-forensic splitter (LUKS1/LUKS2 "af": {"type": "luks1"}).
//
// Split spreads a key of n bytes over n * stripes bytes: stripes-1 random
// blocks, each folded into an accumulator that is "diffused" (every
// hash-sized chunk j of it replaced by H(be32(j) || chunk), a short last
// chunk by the prefix of its hash), and a last block = accumulator ^ key.
// Merge recomputes the accumulator and recovers the key. Both LUKS versions
// and cryptsetup use exactly this construction.
//
// Thread-safety: pure functions.
#pragma once

#include <span>
#include <string_view>

#include "fde/secret.h"

namespace stack::fde::internal {

// REQUIRES: out.size() == key.size() * stripes.
Status AfSplit(std::span<const uint8_t> key, uint32_t stripes, std::string_view hash,
               std::span<uint8_t> out);
// REQUIRES: in.size() == key->size() * stripes.
Status AfMerge(std::span<const uint8_t> in, uint32_t stripes, std::string_view hash,
               Secret* key);

}  // namespace stack::fde::internal

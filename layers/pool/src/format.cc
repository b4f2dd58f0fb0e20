#include "format.h"

#include <xxhash.h>
#if defined(__x86_64__)
#include <xxh_x86dispatch.h>
#endif

#include <algorithm>
#include <cstring>

#include "block/endian.h"

namespace stack::pool {

std::string_view BlockTypeName(BlockType t) {
  switch (t) {
    case BlockType::kSuper: return "superblock";
    case BlockType::kInternal: return "btree internal node";
    case BlockType::kLeaf: return "btree leaf";
    case BlockType::kEntryInternal: return "entry tree internal node";
    case BlockType::kEntryLeaf: return "entry tree leaf";
    case BlockType::kNameInternal: return "name index internal node";
    case BlockType::kNameLeaf: return "name index leaf";
    case BlockType::kSpaceMap: return "space map block";
    case BlockType::kSmIndex: return "space map index block";
  }
  return "unknown block";
}

uint64_t Checksum(std::span<const uint8_t> data, uint64_t seed) {
#if defined(__x86_64__)
  // Same function, vector width chosen at run time (AVX2/AVX-512).
  return XXH3_64bits_withSeed_dispatch(data.data(), data.size(), seed);
#else
  return XXH3_64bits_withSeed(data.data(), data.size(), seed);
#endif
}

void SealBlock(std::span<uint8_t> block, BlockType type, uint64_t location, uint64_t generation) {
  uint8_t* p = block.data();
  PutLE32(p + 8, kMetaMagic);
  PutLE16(p + 12, static_cast<uint16_t>(type));
  PutLE16(p + 14, 0);
  PutLE64(p + 16, location);
  PutLE64(p + 24, generation);
  PutLE64(p, Checksum(block.subspan(8), static_cast<uint64_t>(type)));
}

Status VerifyBlock(std::span<const uint8_t> block, BlockType type, uint64_t location) {
  const uint8_t* p = block.data();
  auto fail = [&](const std::string& why) {
    return Status::Corruption(std::string(BlockTypeName(type)) + " at physical block " +
                              std::to_string(location) + ": " + why);
  };
  if (block.size() <= kHeaderSize) return fail("block too small");
  if (GetLE32(p + 8) != kMetaMagic) return fail("bad magic");
  if (GetLE16(p + 12) != static_cast<uint16_t>(type)) {
    return fail("type is " + std::to_string(GetLE16(p + 12)) + ", expected " +
                std::to_string(static_cast<uint16_t>(type)));
  }
  if (GetLE64(p + 16) != location) {
    return fail("records location " + std::to_string(GetLE64(p + 16)));
  }
  if (GetLE64(p) != Checksum(block.subspan(8), static_cast<uint64_t>(type))) {
    return fail("checksum mismatch");
  }
  return Status::Ok();
}

}  // namespace stack::pool

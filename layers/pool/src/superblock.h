// Superblock: the root of the pool, kept in two slots of two copies each
// (physical blocks 0-3, first 4096 bytes of each): generation g is written
// to slot g % 2, first its primary copy (block g % 2), flushed, then its
// mirror (block 2 + g % 2), flushed. Which generation Open takes, and
// what it makes of damaged copies: superblock_copies.h.
// Layout (little-endian; spec/pool-format.md, "Superblock"):
//     0  metadata block header (type kSuper, location = slot, generation)
//    32  u32 format version      36  u32 block size
//    40  u64 nr_blocks           48  u64 max_blocks
//    56  u64 used_blocks         64  u8[16] pool uuid
//    80  u64 created (unix ns)   88  u64 entry tree root (0 = none)
//    96  u64 next entry id      104  u32 index slots in use, u32 reserved
//   112  u64 name index root    120  u64 number of entries
//   128  u64 index block locations[kMaxIndexSlots]
// Thread-safety: pure functions.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "format.h"

namespace stack::pool {

struct Superblock {
  // The version read (3 or 4); Encode always writes kFormatVersion.
  uint32_t version = kFormatVersion;
  uint64_t generation = 0;
  uint32_t block_size = 0;
  uint64_t nr_blocks = 0;
  uint64_t max_blocks = 0;
  uint64_t used_blocks = 0;
  std::array<uint8_t, 16> uuid{};
  uint64_t created_ns = 0;
  uint64_t entry_root = 0;
  uint64_t name_root = 0;
  uint64_t entry_count = 0;
  // Entries whose name starts with '.' (version 4; 0 when read from version 3,
  // where the field was reserved: the pool counts them at open).
  uint64_t hidden_count = 0;
  uint64_t next_entry_id = 1;
  std::vector<uint64_t> index_locs;
};

// Encodes into a kSuperSize buffer for the copy at physical block `block`
// (SuperCopyBlock(sb.generation % 2, mirror)).
// REQUIRES: index_locs.size() <= kMaxIndexSlots.
std::vector<uint8_t> EncodeSuperblock(const Superblock& sb, uint64_t block);
// REQUIRES: hidden_count <= UINT32_MAX (the pool refuses more).
// Decodes and checks the copy at physical block `block` (0-3): header,
// checksum, then every field's bounds. Corruption saying why otherwise.
Result<Superblock> DecodeSuperblock(std::span<const uint8_t> buf, uint64_t block);

}  // namespace stack::pool

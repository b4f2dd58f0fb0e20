// On-disk constants and the header every metadata block carries
// (spec/pool-format.md, "Metadata block header").
//
// Every metadata block starts with a 32-byte header:
//   0  u64 checksum   XXH3-64 of bytes [8, size), seeded with the block type
//   8  u32 magic      kMetaMagic
//  12  u16 type       BlockType
//  14  u16 reserved   0
//  16  u64 location   the block's own physical block number
//  24  u64 generation the transaction that wrote it
// All integers little-endian. A block read from the wrong place, of the
// wrong type, or with a bad checksum is rejected as Corruption.
//
// The xxhash library is used only here and in format.cc.
// Thread-safety: pure functions.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>

#include "block/endian.h"
#include "block/status.h"

namespace stack::pool {

constexpr uint32_t kMetaMagic = 0x444d5053;  // "SPMD"
constexpr uint32_t kSuperMagic = 0x42535053;  // "SPSB"
// Version 4 added the hidden-entry count (superblock offset 108) and the
// uuid index (name index keys with the top bit set). Version 3 pools are
// still read; a writer upgrades them at open (Pool::Impl::Upgrade).
constexpr uint32_t kFormatVersion = 4;
constexpr uint32_t kOldestFormatVersion = 3;
constexpr uint32_t kHeaderSize = 32;
constexpr uint32_t kSuperSize = 4096;  // bytes of a superblock slot that are used
constexpr uint32_t kMinBlockSize = 4096;
constexpr uint32_t kMaxBlockSize = 1u << 20;
constexpr uint32_t kDefaultBlockSize = 4096;
// Superblock: the index-block locations start at this offset.
constexpr uint32_t kSuperIndexOffset = 128;
constexpr uint32_t kMaxIndexSlots = (kSuperSize - kSuperIndexOffset) / 8;
// Blocks 0-3 hold the superblock: generation g goes to slot g % 2, whose
// primary copy is block (g % 2) and mirror copy block 2 + (g % 2).
constexpr uint64_t kSuperCopies = 4;
constexpr uint64_t kFirstFreeBlock = kSuperCopies;
inline constexpr uint64_t SuperCopyBlock(uint64_t slot, bool mirror) {
  return slot + (mirror ? 2 : 0);
}

enum class BlockType : uint16_t {
  kSuper = 1,
  kInternal = 2,       // volume btree internal node
  kLeaf = 3,           // volume btree leaf
  kSpaceMap = 4,       // reference counts
  kSmIndex = 5,        // locations of space-map blocks
  // 6 was the format-1 volume table chain; never written by format 2.
  kEntryInternal = 7,  // entry tree internal node
  kEntryLeaf = 8,      // entry tree leaf (entry records in 16-byte pieces)
  kNameInternal = 9,   // name index internal node
  kNameLeaf = 10,      // name index leaf (name hash -> entry id)
};

// The three kinds of btree the pool keeps (spec/pool-format.md, "Btree
// nodes"): each has its own node types, so a pointer from one kind of tree
// into another is caught when the node is read.
struct TreeKind {
  BlockType internal;
  BlockType leaf;
  // Leaf values are {data block, checksum} and hold a reference on the
  // block (volume trees); otherwise they are opaque 16 bytes.
  bool values_are_blocks;
};
inline constexpr TreeKind kVolumeTree{BlockType::kInternal, BlockType::kLeaf, true};
inline constexpr TreeKind kEntryTree{BlockType::kEntryInternal, BlockType::kEntryLeaf, false};
inline constexpr TreeKind kNameTree{BlockType::kNameInternal, BlockType::kNameLeaf, false};

std::string_view BlockTypeName(BlockType t);

// Little-endian loads for the hot paths (binary search in nodes, space-map
// scans): one load on little-endian hosts, the portable helper elsewhere.
inline uint64_t LoadLE64(const uint8_t* p) {
  if constexpr (std::endian::native == std::endian::little) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
  } else {
    return GetLE64(p);
  }
}
inline uint32_t LoadLE32(const uint8_t* p) {
  if constexpr (std::endian::native == std::endian::little) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
  } else {
    return GetLE32(p);
  }
}

// XXH3-64 of `data` with `seed`.
uint64_t Checksum(std::span<const uint8_t> data, uint64_t seed);
// Checksum of a data block at physical block `phys` (seeded with phys so a
// block read from the wrong place fails).
inline uint64_t DataChecksum(std::span<const uint8_t> data, uint64_t phys) {
  return Checksum(data, phys ^ 0x9e3779b97f4a7c15ull);
}

// Fills the header (magic, type, location, generation) and the checksum.
// REQUIRES: block.size() > kHeaderSize.
void SealBlock(std::span<uint8_t> block, BlockType type, uint64_t location, uint64_t generation);
// Verifies magic, type, location and checksum. Corruption naming the block.
Status VerifyBlock(std::span<const uint8_t> block, BlockType type, uint64_t location);

// Space map geometry for a block size.
inline uint64_t SmEntriesPerBlock(uint32_t block_size) { return (block_size - kHeaderSize) / 4; }
inline uint64_t IndexEntriesPerBlock(uint32_t block_size) {
  return (block_size - kHeaderSize) / 8;
}

}  // namespace stack::pool

#include "superblock.h"

#include <cstring>

#include "block/endian.h"

namespace stack::pool {

std::vector<uint8_t> EncodeSuperblock(const Superblock& sb, uint64_t block) {
  std::vector<uint8_t> buf(kSuperSize, 0);
  uint8_t* p = buf.data();
  PutLE32(p + 32, kFormatVersion);
  PutLE32(p + 36, sb.block_size);
  PutLE64(p + 40, sb.nr_blocks);
  PutLE64(p + 48, sb.max_blocks);
  PutLE64(p + 56, sb.used_blocks);
  std::memcpy(p + 64, sb.uuid.data(), 16);
  PutLE64(p + 80, sb.created_ns);
  PutLE64(p + 88, sb.entry_root);
  PutLE64(p + 96, sb.next_entry_id);
  PutLE32(p + 104, static_cast<uint32_t>(sb.index_locs.size()));
  PutLE32(p + 108, static_cast<uint32_t>(sb.hidden_count));
  PutLE64(p + 112, sb.name_root);
  PutLE64(p + 120, sb.entry_count);
  for (size_t i = 0; i < sb.index_locs.size(); ++i) {
    PutLE64(p + kSuperIndexOffset + 8 * i, sb.index_locs[i]);
  }
  SealBlock(buf, BlockType::kSuper, block, sb.generation);
  return buf;
}

Result<Superblock> DecodeSuperblock(std::span<const uint8_t> buf, uint64_t block) {
  if (buf.size() < kSuperSize) return Status::Corruption("superblock copy too short");
  std::span<const uint8_t> s = buf.subspan(0, kSuperSize);
  RETURN_IF_ERROR(VerifyBlock(s, BlockType::kSuper, block));
  const uint8_t* p = s.data();
  auto fail = [&](const std::string& why) {
    return Status::Corruption("superblock at physical block " + std::to_string(block) + ": " +
                              why);
  };
  Superblock sb;
  sb.generation = GetLE64(p + 24);
  if (sb.generation % 2 != block % 2) return fail("generation does not belong in this slot");
  sb.version = GetLE32(p + 32);
  if (sb.version < kOldestFormatVersion || sb.version > kFormatVersion) {
    return fail("unsupported format version " + std::to_string(sb.version) +
                " (this build reads versions " + std::to_string(kOldestFormatVersion) + " to " +
                std::to_string(kFormatVersion) + ")");
  }
  sb.block_size = GetLE32(p + 36);
  if (sb.block_size < kMinBlockSize || sb.block_size > kMaxBlockSize ||
      (sb.block_size & (sb.block_size - 1)) != 0) {
    return fail("bad block size " + std::to_string(sb.block_size));
  }
  sb.nr_blocks = GetLE64(p + 40);
  sb.max_blocks = GetLE64(p + 48);
  sb.used_blocks = GetLE64(p + 56);
  std::memcpy(sb.uuid.data(), p + 64, 16);
  sb.created_ns = GetLE64(p + 80);
  sb.entry_root = GetLE64(p + 88);
  sb.next_entry_id = GetLE64(p + 96);
  uint32_t nidx = GetLE32(p + 104);
  sb.name_root = GetLE64(p + 112);
  sb.entry_count = GetLE64(p + 120);
  // Version 3 reserved these bytes: the pool counts hidden entries itself.
  if (sb.version >= 4) sb.hidden_count = GetLE32(p + 108);
  if (sb.nr_blocks < kFirstFreeBlock + 1 || sb.nr_blocks > sb.max_blocks) {
    return fail("bad block counts");
  }
  if (sb.used_blocks > sb.nr_blocks) return fail("used blocks exceed the pool");
  if (nidx > kMaxIndexSlots) return fail("too many index slots");
  uint64_t per_sm = SmEntriesPerBlock(sb.block_size), per_idx = IndexEntriesPerBlock(sb.block_size);
  uint64_t need = ((sb.nr_blocks + per_sm - 1) / per_sm + per_idx - 1) / per_idx;
  if (nidx != need) return fail("index slot count does not match the pool size");
  auto outside = [&](uint64_t root) {
    return root != 0 && (root < kFirstFreeBlock || root >= sb.nr_blocks);
  };
  if (outside(sb.entry_root)) return fail("entry tree root outside the pool");
  if (outside(sb.name_root)) return fail("name index root outside the pool");
  if ((sb.entry_root == 0) != (sb.entry_count == 0) || (sb.name_root == 0) != (sb.entry_count == 0)) {
    return fail("entry count does not match the entry trees");
  }
  if (sb.entry_count >= sb.next_entry_id) return fail("more entries than ids handed out");
  if (sb.hidden_count > sb.entry_count) return fail("more hidden entries than entries");
  for (uint32_t i = 0; i < nidx; ++i) {
    uint64_t l = GetLE64(p + kSuperIndexOffset + 8 * i);
    if (l != 0 && (l < kFirstFreeBlock || l >= sb.nr_blocks)) {
      return fail("index block location outside the pool");
    }
    sb.index_locs.push_back(l);
  }
  return sb;
}

}  // namespace stack::pool

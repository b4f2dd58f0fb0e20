#include "freed_blocks.h"

#include <algorithm>

namespace stack::fsbridge {

void FreedBlocks::Attach(ext2_filsys fs) {
  fs->priv_data = this;
  ext2fs_set_block_alloc_stats_callback(fs, &FreedBlocks::OnBlock, nullptr);
  ext2fs_set_block_alloc_stats_range_callback(fs, &FreedBlocks::OnRange, nullptr);
}

void FreedBlocks::OnBlock(ext2_filsys fs, blk64_t blk, int inuse) {
  if (inuse < 0) static_cast<FreedBlocks*>(fs->priv_data)->Add(blk, 1);
}

void FreedBlocks::OnRange(ext2_filsys fs, blk64_t blk, blk_t num, int inuse) {
  // e2fsprogs 1.47.0 passes the range's end and a count of 0 here (the
  // loop's variables, not the arguments): such calls say nothing, and
  // fsbridge's own range frees go through FreeBlockRange instead.
  if (inuse < 0 && num > 0) static_cast<FreedBlocks*>(fs->priv_data)->Add(blk, num);
}

void FreedBlocks::Add(blk64_t first, blk64_t count) {
  if (count == 0) return;
  blk64_t end = first + count;
  // Merge with every range that overlaps or touches [first, end).
  auto it = ranges_.upper_bound(first);
  if (it != ranges_.begin() && std::prev(it)->second >= first) --it;
  while (it != ranges_.end() && it->first <= end) {
    first = std::min(first, it->first);
    end = std::max(end, it->second);
    it = ranges_.erase(it);
  }
  ranges_.emplace(first, end);
}

void FreeBlockRange(ext2_filsys fs, blk64_t first, blk64_t count) {
  ext2fs_block_alloc_stats_range(fs, first, blk_t(count), -1);
  if (fs->block_alloc_stats_range == &FreedBlocks::OnRange)
    static_cast<FreedBlocks*>(fs->priv_data)->Add(first, count);
}

std::vector<BlockRange> FreedBlocks::TakeStillFree(ext2_filsys fs) {
  std::vector<BlockRange> out;
  for (const auto& [first, end] : ranges_) {
    // Split each recorded range at the blocks allocated again since.
    for (blk64_t b = first; b < end;) {
      blk64_t used = 0;
      if (ext2fs_find_first_set_block_bitmap2(fs->block_map, b, end - 1, &used) != 0) used = end;
      if (used > b) out.push_back(BlockRange{b, used - b});
      if (used >= end) break;
      blk64_t next_free = 0;
      if (ext2fs_find_first_zero_block_bitmap2(fs->block_map, used, end - 1, &next_free) != 0) break;
      b = next_free;
    }
  }
  ranges_.clear();
  return out;
}

std::vector<BlockRange> FreeRanges(ext2_filsys fs) {
  std::vector<BlockRange> out;
  const blk64_t start = fs->super->s_first_data_block;
  const blk64_t end = ext2fs_blocks_count(fs->super);
  for (blk64_t b = start; b < end;) {
    blk64_t free_at = 0;
    if (ext2fs_find_first_zero_block_bitmap2(fs->block_map, b, end - 1, &free_at) != 0) break;
    blk64_t used = 0;
    if (ext2fs_find_first_set_block_bitmap2(fs->block_map, free_at, end - 1, &used) != 0) used = end;
    out.push_back(BlockRange{free_at, used - free_at});
    b = used;
  }
  return out;
}

}  // namespace stack::fsbridge

// FreedBlocks: the block ranges libext2fs frees while a filesystem is open
// for writing (file data, extent-tree and directory blocks of removed,
// truncated or rolled-back files), so they can be discarded afterwards and
// a thin device below (a pool volume) gives their space back.
//
// It hooks the filesystem's block-allocation callbacks, which libext2fs
// calls for every block it frees (ext2fs_block_alloc_stats2: punch, extent
// and directory blocks) and every range (ext2fs_block_alloc_stats_range;
// e2fsprogs 1.47.0 passes that callback the wrong range, so fsbridge frees
// ranges through FreeBlockRange, which records them itself). A freed block may be allocated again before the discard (an
// overwrite frees the old data and writes the new), so only ranges still
// free in the block bitmap are handed out (TakeStillFree).
//
// Thread-safety: as the filesystem it is attached to (one thread).
#pragma once

#include <ext2fs/ext2fs.h>

#include <cstdint>
#include <map>
#include <vector>

namespace stack::fsbridge {

struct BlockRange {
  blk64_t first = 0;
  blk64_t count = 0;
};

class FreedBlocks {
 public:
  FreedBlocks() = default;
  FreedBlocks(const FreedBlocks&) = delete;
  FreedBlocks& operator=(const FreedBlocks&) = delete;

  // Hooks fs's block-allocation callbacks (fs->priv_data points here).
  // REQUIRES: this outlives fs; fs->priv_data is not used by anyone else.
  void Attach(ext2_filsys fs);
  bool empty() const { return ranges_.empty(); }
  // The recorded ranges still free in fs's block bitmap, merged and in
  // order; the record is cleared.
  std::vector<BlockRange> TakeStillFree(ext2_filsys fs);

 private:
  friend void FreeBlockRange(ext2_filsys fs, blk64_t first, blk64_t count);
  static void OnBlock(ext2_filsys fs, blk64_t blk, int inuse);
  static void OnRange(ext2_filsys fs, blk64_t blk, blk_t num, int inuse);
  void Add(blk64_t first, blk64_t count);

  std::map<blk64_t, blk64_t> ranges_;  // first -> end (exclusive), disjoint, not adjacent
};

// Frees [first, first + count) in fs (ext2fs_block_alloc_stats_range) and
// records it in the FreedBlocks attached to fs, if any.
void FreeBlockRange(ext2_filsys fs, blk64_t first, blk64_t count);

// Every free range of fs's block bitmap, in order.
std::vector<BlockRange> FreeRanges(ext2_filsys fs);

}  // namespace stack::fsbridge

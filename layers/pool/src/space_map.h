// SpaceMap: a reference count for every physical block of the pool.
//
// On disk (spec/pool-format.md, "Space map"): the superblock lists index
// blocks; an index block lists space-map blocks; a space-map block holds a
// little-endian u32 count per physical block. A location of 0 means "not
// materialised yet: every count in it is zero", so a new or grown pool
// costs nothing until its blocks are used.
//
// In a transaction the committed blocks are never touched: changes are
// kept as per-block deltas in memory and folded into shadow copies of the
// space-map and index blocks by PrepareCommit(). Invariants:
//   - A block whose count dropped to zero in the running transaction is
//     never handed out again before the transaction commits (the committed
//     tree may still point at it).
//   - PrepareCommit() allocates at most one new block per space-map block
//     and per index block (each is shadowed at most once per commit), so
//     the pool keeps that many blocks in reserve and a commit never fails
//     for lack of space (ReserveBlocks()).
//
// Thread-safety: none.
#pragma once

#include <cstdint>
#include <functional>
#include <set>
#include <vector>

#include "block_cache.h"
#include "delta_table.h"

namespace stack::pool {

class SpaceMap {
 public:
  SpaceMap(BlockCache* cache, uint32_t block_size);

  // Loads committed state (from the superblock) and forgets any transaction.
  void Load(uint64_t nr_blocks, uint64_t used_blocks, std::vector<uint64_t> index_locs);

  uint64_t nr_blocks() const { return nr_blocks_; }
  uint64_t used_blocks() const { return used_; }
  // Blocks an allocation may take now (free and not freed in this transaction).
  uint64_t available() const { return nr_blocks_ - used_ - freed_pending_; }
  const std::vector<uint64_t>& index_locs() const { return index_locs_; }
  // Blocks a commit may need for shadowing every space-map and index block
  // of a pool of max_blocks.
  static uint64_t ReserveBlocks(uint64_t max_blocks, uint32_t block_size);
  // Largest pool (in blocks) the superblock's index array can describe.
  static uint64_t MaxPoolBlocks(uint32_t block_size);

  Result<uint32_t> Get(uint64_t b);
  Status Inc(uint64_t b);
  // Returns the new count. Corruption if the count is already zero.
  Result<uint32_t> Dec(uint64_t b);
  // True if b was allocated in the running transaction.
  bool IsNew(uint64_t b) const;

  // Takes a specific free block (count 0 -> 1), e.g. the superblock slots.
  Status Claim(uint64_t b);
  // One free block (count becomes 1). NoSpace if none.
  Result<uint64_t> Alloc();
  // n free blocks, preferring one contiguous run. NoSpace (nothing
  // allocated) if fewer than n are available.
  Status AllocMany(uint64_t n, std::vector<uint64_t>* out);

  // Extends the map to cover new_nr_blocks (the store must already hold them).
  Status Grow(uint64_t new_nr_blocks);

  // Folds all deltas into shadowed space-map/index blocks (dirty in cache).
  Status PrepareCommit();
  // The transaction is durable: forget deltas and shadow bookkeeping.
  // Returns the blocks whose count this transaction took to zero, and those
  // it allocated and freed again, sorted (free in the durable state: their
  // bytes may be discarded).
  std::vector<uint64_t> EndCommit();
  // Calls fn(first, count) for every run of at least min_blocks blocks
  // that are free in the committed state, in order (from kFirstFreeBlock).
  // REQUIRES: no change in the running transaction (!changed()).
  Status ForEachFreeRun(uint64_t min_blocks,
                        const std::function<void(uint64_t, uint64_t)>& fn);
  // Calls fn(first, count) for the runs of blocks within [first, first +
  // count) that are free in the committed state.
  // REQUIRES: no change in the running transaction (!changed()).
  Status ForEachFreeRunIn(uint64_t first, uint64_t count,
                          const std::function<void(uint64_t, uint64_t)>& fn);
  // The next allocations search from block b on (next fit), e.g. the
  // blocks the last commit freed, so a rewrite reuses them.
  void PreferFrom(uint64_t b) {
    if (b >= kFirstFreeBlock && b < nr_blocks_) cursor_ = b;
  }
  // Entries of per-block transaction state (the pool bounds it by committing).
  size_t txn_entries() const { return txn_.size(); }
  bool changed() const { return !txn_.empty(); }

 private:
  // Committed (or already folded) count of b, without the pending delta.
  Result<uint32_t> BaseCount(uint64_t b);
  Result<BlockRef> ShadowSm(uint64_t smi);
  Result<BlockRef> ShadowIndex(uint64_t idx);
  Result<uint64_t> AllocOne();
  // Claims up to `want` free blocks in one scan from the cursor, writing
  // them to out[0..]; returns how many (at least 1), or NoSpace.
  Result<uint64_t> AllocUpTo(uint64_t want, uint64_t* out);
  Status FoldDeltas();
  // ForEachFreeRun over [lo, hi): runs of at least min_blocks.
  Status FreeRuns(uint64_t lo, uint64_t hi, uint64_t min_blocks,
                  const std::function<void(uint64_t, uint64_t)>& fn);
  // cache_->Read of a committed index (which 0) or space-map (which 1)
  // block, remembering the last one of each: a write stream asks for the
  // same two blocks for every block it allocates or frees. Outside folding
  // only, when no space-map or index block changes and none of their
  // locations is reused (that needs a commit, which forgets them).
  // `key` names what the block is (index slot idx, space-map block smi),
  // so BaseCount can find the memoised space-map block by smi.
  Result<BlockRef> ReadCommitted(int which, uint64_t loc, BlockType type, uint64_t key);
  void ForgetCommitted() {
    for (auto& m : memo_) m = {};
  }

  BlockCache* cache_;
  uint32_t block_size_;
  uint64_t per_sm_;   // counts per space-map block
  uint64_t per_idx_;  // locations per index block
  uint64_t nr_blocks_ = 0;
  uint64_t used_ = 0;
  uint64_t freed_pending_ = 0;
  uint64_t cursor_ = kFirstFreeBlock;
  std::vector<uint64_t> index_locs_;
  DeltaTable txn_;
  std::vector<uint64_t> released_;  // counts folded to zero this transaction
  std::set<uint64_t> shadowed_sm_, shadowed_idx_;
  bool folding_ = false;  // inside PrepareCommit: deltas are being folded
  std::vector<uint64_t> touched_;  // counts changed while folding (FoldDeltas)
  struct Memo {
    uint64_t loc = 0;
    uint64_t key = 0;
    BlockRef ref;
  };
  Memo memo_[2];  // ReadCommitted's last index and space-map block
};

}  // namespace stack::pool

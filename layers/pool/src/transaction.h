// TransactionManager: the pool's transactions over its metadata blocks
// (Rodeh; dm persistent-data's transaction manager). It owns the block
// cache (dm's block manager) and the space map; the trees (BTree,
// EntryTable) and the pool reach blocks only through it, and only it
// drives the cache, the space map and the store during a commit.
//
// Rules it enforces:
//   1. A block written by the committed state is never modified in place:
//      Shadow() copies it to a newly allocated block.
//   2. A block allocated in the running transaction with reference count 1
//      is modified in place (it is invisible to the committed state).
//   3. Shadowing a block shared by several parents (count > 1) leaves the
//      original to the others (count - 1) and tells the caller to add one
//      reference to each child of the copy: this is the lazy reference-
//      count propagation that makes snapshots O(1).
//
// Commit (spec/pool-format.md, "Commit"), after the caller has written its
// own changed records into its trees:
//   1. fold reference-count deltas into shadowed space-map/index blocks;
//   2. write every dirty metadata block; flush;
//   3. write the superblock (generation + 1) into slot (generation + 1) % 2:
//      primary copy, flush, mirror copy, flush;
//   4. the transaction's freed blocks become allocatable, and the allocator
//      takes them first; long runs of them are discarded from the store (the
//      pool file gives the space back) one commit later, when still free,
//      or on ReleaseDeferred() (the pool's close). A rewrite stream reuses
//      what the last commit freed, so the store neither punches nor
//      reallocates the same bytes over and over. When a commit cuts such a
//      stream (the transaction limit), still-free blocks wait one more
//      commit, up to twice the most that one of the last three
//      transactions took from the deferred runs: the next cut takes about
//      as much, and the short commits that end a pass (its flush) do not
//      give back what the next pass takes. A stream that stopped taking
//      for three commits has its runs given back.
// Nothing the previous superblock references is written before step 3
// completes, so a crash at any point leaves one of the two slots valid in
// both copies, and at most one copy torn (superblock_copies.h).
//
// Thread-safety: none (the pool serialises every call).
#pragma once

#include <memory>
#include <utility>
#include <vector>

#include "block_cache.h"
#include "space_map.h"
#include "superblock.h"

namespace stack::pool {

class TransactionManager {
 public:
  // store: outlives this object. cache_blocks: the metadata cache's budget.
  TransactionManager(Store* store, uint32_t block_size, size_t cache_blocks);

  BlockCache& cache() { return *cache_; }
  SpaceMap& sm() { return *sm_; }
  const SpaceMap& sm() const { return *sm_; }

  // Forgets the running transaction and starts one on top of `committed`
  // (the superblock just read): the cache is emptied, the space map loaded.
  void Begin(const Superblock& committed);
  // Empties the cache only (before the superblock copies are read again).
  void DropCache() { cache_->Clear(); }
  // True if the running transaction changed a reference count.
  bool changed() const { return sm_->changed(); }

  Result<BlockRef> Read(uint64_t loc, BlockType type) { return cache_->Read(loc, type); }
  // A node of a tree of `kind` (either of its node types).
  Result<BlockRef> ReadNode(uint64_t loc, const TreeKind& kind) {
    return cache_->Read(loc, kind.leaf, kind.internal);
  }
  // A new zeroed block of `type` (count 1), dirty in the cache.
  Result<BlockRef> New(BlockType type);
  // A writable version of the node at `loc` (see the rules above).
  // *inc_children is set when the caller must add a reference to every
  // child of the returned block.
  Result<BlockRef> ShadowNode(uint64_t loc, const TreeKind& kind, bool* inc_children);

  // Makes the running transaction durable as generation next->generation.
  // The caller fills next's own fields (generation, roots, counters); the
  // space map's (nr_blocks, used_blocks, index_locs) are filled here. On
  // OK the next transaction has begun. On an error the running transaction
  // is in an unknown state: the caller must abandon it (reload).
  Status Commit(Superblock* next);
  // Discards (punches out of a file store) the deferred runs (step 4) that
  // are still free. REQUIRES: no change in the running transaction (right
  // after a commit). A hint: store errors are ignored.
  void ReleaseDeferred();

 private:
  // ReleaseDeferred(); with keep_taken, the lowest free deferred blocks, up
  // to twice the most taken from the deferred runs by this transaction or
  // either of the two before it (step 4), are kept back (returned, sorted)
  // instead of discarded.
  std::vector<std::pair<uint64_t, uint64_t>> ReleaseDeferred(bool keep_taken);

  Store* store_;
  uint32_t bs_;
  std::unique_ptr<BlockCache> cache_;
  std::unique_ptr<SpaceMap> sm_;
  // Runs {first block, count}, sorted, waiting for their discard: what the
  // last commit freed (only runs of at least 64 KiB), and what a rewrite
  // stream is still expected to take of earlier ones (step 4).
  std::vector<std::pair<uint64_t, uint64_t>> deferred_;
  // Blocks the two previous transactions took from the deferred runs.
  uint64_t taken_before_[2] = {0, 0};
};

}  // namespace stack::pool

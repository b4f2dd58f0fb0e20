// TransactionManager: shadowing of metadata blocks (Rodeh; dm's
// transaction manager). Sits between the block manager/space map and the
// btree.
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
// Commit itself (space map fold, write, flush, superblock, flush) is run by
// the pool, which owns the superblock; see pool_impl.h.
//
// Thread-safety: none.
#pragma once

#include "block_cache.h"
#include "space_map.h"

namespace stack::pool {

class TransactionManager {
 public:
  TransactionManager(BlockCache* cache, SpaceMap* sm) : cache_(cache), sm_(sm) {}

  BlockCache& cache() { return *cache_; }
  SpaceMap& sm() { return *sm_; }

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

 private:
  BlockCache* cache_;
  SpaceMap* sm_;
};

}  // namespace stack::pool

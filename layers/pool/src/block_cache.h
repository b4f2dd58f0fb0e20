// BlockCache: the block manager. Reads, validates, caches and writes back
// metadata blocks through a Store, within a fixed budget of blocks.
//
// Every block read from the store is checked by VerifyBlock (magic, type,
// own location, checksum) before anyone sees it. Blocks are handed out as
// shared_ptr; a block someone still holds is pinned and never evicted.
// Dirty blocks are sealed (header + checksum) and written when evicted or
// by WriteDirty(). Writing a dirty block early is always safe: only blocks
// allocated in the running transaction are ever modified, and nothing
// committed points at them (see transaction.h).
//
// The cache may briefly exceed its capacity while every block is pinned.
// Thread-safety: none; the pool serialises access.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <unordered_map>
#include <vector>

#include "format.h"
#include "pool/store.h"

namespace stack::pool {

class BlockCache;

struct CachedBlock {
  uint64_t loc = 0;
  BlockType type = BlockType::kLeaf;
  bool dirty = false;  // set through MarkDirty, so the cache can find it
  std::vector<uint8_t> data;
  BlockCache* cache = nullptr;
  uint8_t* payload() { return data.data() + kHeaderSize; }
  const uint8_t* payload() const { return data.data() + kHeaderSize; }
  // Marks the block modified: WriteDirty (or eviction) will write it.
  void MarkDirty();
};
using BlockRef = std::shared_ptr<CachedBlock>;

class BlockCache {
 public:
  // REQUIRES: store outlives the cache.
  BlockCache(Store* store, uint32_t block_size, size_t capacity_blocks);

  uint32_t block_size() const { return block_size_; }
  // Generation stamped into blocks written from now on.
  void set_generation(uint64_t g) { generation_ = g; }

  // The block at `loc`, validated as `type` or `alt` (the header says
  // which; a tree node may be internal or leaf). Corruption on a bad block.
  Result<BlockRef> Read(uint64_t loc, BlockType type) { return Read(loc, type, type); }
  Result<BlockRef> Read(uint64_t loc, BlockType type, BlockType alt);
  // A zero-filled dirty block at `loc` (replacing any cached copy).
  BlockRef Create(uint64_t loc, BlockType type);
  // Seals and writes every dirty block (contiguous runs in one write).
  Status WriteDirty();
  // Drops every cached block, dirty or not (used to abandon a transaction).
  void Clear();

  size_t cached_blocks() const { return map_.size(); }
  uint64_t reads() const { return reads_; }

 private:
  friend struct CachedBlock;
  void Touch(std::list<BlockRef>::iterator it);
  Status Insert(BlockRef b);
  Status EvictIfNeeded();
  Status WriteOne(CachedBlock& b);

  Store* store_;
  uint32_t block_size_;
  size_t capacity_;
  uint64_t generation_ = 0;
  uint64_t reads_ = 0;
  Status pending_error_;
  std::list<BlockRef> lru_;  // front = most recent
  std::unordered_map<uint64_t, std::list<BlockRef>::iterator> map_;
  // Locations marked dirty since the last WriteDirty (may repeat, or name
  // blocks already written by eviction): WriteDirty looks only at these,
  // not at the whole cache, so a commit costs what it changed.
  std::vector<uint64_t> dirty_locs_;
};

}  // namespace stack::pool

#include "block_cache.h"

#include <algorithm>
#include <cstdlib>

#include <algorithm>

#include "block/endian.h"

namespace stack::pool {

BlockCache::BlockCache(Store* store, uint32_t block_size, size_t capacity_blocks)
    : store_(store), block_size_(block_size), capacity_(std::max<size_t>(capacity_blocks, 16)) {}

void CachedBlock::MarkDirty() {
  if (dirty) return;
  dirty = true;
  if (cache != nullptr) cache->dirty_locs_.push_back(loc);
}

void BlockCache::Touch(std::list<BlockRef>::iterator it) {
  if (it != lru_.begin()) lru_.splice(lru_.begin(), lru_, it);
}

Status BlockCache::WriteOne(CachedBlock& b) {
  SealBlock(b.data, b.type, b.loc, generation_);
  RETURN_IF_ERROR(store_->Write(b.loc * block_size_, b.data));
  b.dirty = false;
  return Status::Ok();
}

Status BlockCache::EvictIfNeeded() {
  // Walk from the cold end; skip pinned blocks (someone holds a reference).
  auto it = lru_.end();
  while (map_.size() > capacity_ && it != lru_.begin()) {
    --it;
    if (it->use_count() > 1) continue;
    if ((*it)->dirty) RETURN_IF_ERROR(WriteOne(**it));
    map_.erase((*it)->loc);
    it = lru_.erase(it);
  }
  return Status::Ok();
}

Status BlockCache::Insert(BlockRef b) {
  auto found = map_.find(b->loc);
  if (found != map_.end()) {
    lru_.erase(found->second);
    map_.erase(found);
  }
  lru_.push_front(std::move(b));
  map_[lru_.front()->loc] = lru_.begin();
  return EvictIfNeeded();
}

Result<BlockRef> BlockCache::Read(uint64_t loc, BlockType type, BlockType alt) {
  auto found = map_.find(loc);
  if (found != map_.end()) {
    BlockRef b = *found->second;
    bool type_ok = b->type == type || b->type == alt;
    if (!type_ok) {
      return Status::Corruption(std::string(BlockTypeName(type)) + " expected at physical block " +
                                std::to_string(loc) + " but it holds a " +
                                std::string(BlockTypeName(b->type)));
    }
    Touch(found->second);
    return b;
  }
  auto b = std::make_shared<CachedBlock>();
  b->loc = loc;
  b->cache = this;
  b->data.resize(block_size_);
  RETURN_IF_ERROR(store_->Read(loc * block_size_, b->data));
  ++reads_;
  if (alt != type && GetLE16(b->data.data() + 12) == static_cast<uint16_t>(alt)) type = alt;
  RETURN_IF_ERROR(VerifyBlock(b->data, type, loc));
  b->type = type;
  BlockRef ref = b;
  RETURN_IF_ERROR(Insert(std::move(b)));
  return ref;
}

BlockRef BlockCache::Create(uint64_t loc, BlockType type) {
  auto b = std::make_shared<CachedBlock>();
  b->loc = loc;
  b->type = type;
  b->cache = this;
  b->MarkDirty();
  b->data.assign(block_size_, 0);
  BlockRef ref = b;
  // Eviction can only fail writing some other dirty block; that error
  // resurfaces at the next WriteDirty, so it is not lost.
  Status st = Insert(std::move(b));
  if (!st.ok()) pending_error_ = st;
  return ref;
}

Status BlockCache::WriteDirty() {
  if (!pending_error_.ok()) {
    Status st = pending_error_;
    pending_error_ = Status::Ok();
    return st;
  }
  std::sort(dirty_locs_.begin(), dirty_locs_.end());
  dirty_locs_.erase(std::unique(dirty_locs_.begin(), dirty_locs_.end()), dirty_locs_.end());
  std::vector<CachedBlock*> dirty;
  for (uint64_t loc : dirty_locs_) {
    auto it = map_.find(loc);
    if (it != map_.end() && (*it->second)->dirty) dirty.push_back(it->second->get());
  }
#if defined(STACK_EXPENSIVE_CHECKS) || !defined(NDEBUG)
  size_t all_dirty = 0;
  for (auto& b : lru_) all_dirty += b->dirty ? 1 : 0;
  if (all_dirty != dirty.size()) std::abort();  // a block was dirtied without MarkDirty
#endif
  std::vector<uint8_t> run;
  size_t i = 0;
  while (i < dirty.size()) {
    size_t j = i + 1;
    while (j < dirty.size() && dirty[j]->loc == dirty[j - 1]->loc + 1 && j - i < 256) ++j;
    if (j - i == 1) {
      RETURN_IF_ERROR(WriteOne(*dirty[i]));
    } else {
      run.resize((j - i) * block_size_);
      for (size_t k = i; k < j; ++k) {
        SealBlock(dirty[k]->data, dirty[k]->type, dirty[k]->loc, generation_);
        std::copy(dirty[k]->data.begin(), dirty[k]->data.end(),
                  run.begin() + (k - i) * block_size_);
      }
      RETURN_IF_ERROR(store_->Write(dirty[i]->loc * block_size_, run));
      for (size_t k = i; k < j; ++k) dirty[k]->dirty = false;
    }
    i = j;
  }
  dirty_locs_.clear();
  return Status::Ok();
}

void BlockCache::Clear() {
  lru_.clear();
  map_.clear();
  dirty_locs_.clear();
  pending_error_ = Status::Ok();
}

}  // namespace stack::pool

#include "transaction.h"

#include <algorithm>

#include "superblock_copies.h"

namespace stack::pool {

TransactionManager::TransactionManager(Store* store, uint32_t block_size, size_t cache_blocks)
    : store_(store),
      bs_(block_size),
      cache_(std::make_unique<BlockCache>(store, block_size, cache_blocks)),
      sm_(std::make_unique<SpaceMap>(cache_.get(), block_size)) {}

void TransactionManager::Begin(const Superblock& committed) {
  cache_->Clear();
  sm_->Load(committed.nr_blocks, committed.used_blocks, committed.index_locs);
  cache_->set_generation(committed.generation + 1);
}

Result<BlockRef> TransactionManager::New(BlockType type) {
  ASSIGN_OR_RETURN(uint64_t loc, sm_->Alloc());
  return cache_->Create(loc, type);
}

Result<BlockRef> TransactionManager::ShadowNode(uint64_t loc, const TreeKind& kind,
                                                bool* inc_children) {
  *inc_children = false;
  ASSIGN_OR_RETURN(uint32_t count, sm_->Get(loc));
  ASSIGN_OR_RETURN(BlockRef old, ReadNode(loc, kind));
  if (count == 1 && sm_->IsNew(loc)) {
    old->MarkDirty();
    return old;
  }
  ASSIGN_OR_RETURN(BlockRef copy, New(old->type));
  std::copy(old->data.begin() + kHeaderSize, old->data.end(), copy->data.begin() + kHeaderSize);
  // count == 1: the copy inherits the children (no count changes) and the
  // original is freed. count > 1: the original stays with its other owners.
  RETURN_IF_ERROR(sm_->Dec(loc).status());
  *inc_children = count > 1;
  return copy;
}

Status TransactionManager::Commit(Superblock* next) {
  // 1. Reference counts.
  RETURN_IF_ERROR(sm_->PrepareCommit());
  // 2. Metadata, then a barrier.
  RETURN_IF_ERROR(cache_->WriteDirty());
  RETURN_IF_ERROR(store_->Flush());
  // 3. The superblock: primary, barrier, mirror, barrier. A crash tears at
  // most one copy, and only in the patterns superblock_copies.h recognises.
  next->nr_blocks = sm_->nr_blocks();
  next->used_blocks = sm_->used_blocks();
  next->index_locs = sm_->index_locs();
  const uint64_t slot = next->generation % 2;
  for (bool mirror : {false, true}) {
    const uint64_t block = SuperCopyBlock(slot, mirror);
    RETURN_IF_ERROR(store_->Write(block * bs_, EncodeSuperblock(*next, block)));
    RETURN_IF_ERROR(store_->Flush());
  }
  // 4. Durable: the next transaction begins.
  std::vector<uint64_t> released = sm_->EndCommit();
  cache_->set_generation(next->generation + 1);
  ReleaseSpace(released);
  return Status::Ok();
}

void TransactionManager::ReleaseSpace(const std::vector<uint64_t>& blocks) {
  // Only runs of at least kReleaseMinBytes: a deleted volume or a discarded
  // range gives its space back to the file system, while the few metadata
  // blocks every commit frees are left for reuse (punching them would only
  // fragment the backing file).
  constexpr uint64_t kReleaseMinBytes = 64 << 10;
  for (size_t i = 0; i < blocks.size();) {
    size_t j = i + 1;
    while (j < blocks.size() && blocks[j] == blocks[j - 1] + 1) ++j;
    const uint64_t len = (j - i) * bs_;
    if (len >= kReleaseMinBytes) {
      // A hint: the blocks are free in the durable state whatever happens.
      Status st = store_->Discard(blocks[i] * bs_, len);
      (void)st;
    }
    i = j;
  }
}

}  // namespace stack::pool

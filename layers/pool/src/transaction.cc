#include "transaction.h"

#include <algorithm>

namespace stack::pool {

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

}  // namespace stack::pool

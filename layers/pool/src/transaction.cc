#include "transaction.h"

#include <algorithm>
#include <iterator>

#include "superblock_copies.h"

namespace stack::pool {
namespace {

// Only runs of at least this size are given back: a deleted volume or a
// discarded range returns its space to the file system, while the few
// metadata blocks every commit frees are left for reuse (punching them
// would only fragment the backing file).
constexpr uint64_t kReleaseMinBytes = 64 << 10;

// The runs of `blocks` (sorted) of at least kReleaseMinBytes.
std::vector<std::pair<uint64_t, uint64_t>> LongRuns(const std::vector<uint64_t>& blocks,
                                                     uint32_t bs) {
  std::vector<std::pair<uint64_t, uint64_t>> runs;
  for (size_t i = 0; i < blocks.size();) {
    size_t j = i + 1;
    while (j < blocks.size() && blocks[j] == blocks[j - 1] + 1) ++j;
    if ((j - i) * bs >= kReleaseMinBytes) runs.emplace_back(blocks[i], j - i);
    i = j;
  }
  return runs;
}

}  // namespace

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
  // 4. Durable: the next transaction begins. What this commit freed waits,
  // and the allocator tries it first. Of what earlier commits freed, the
  // parts still free go back to the store now, except what a rewrite
  // stream that commits cut (the transaction limit) will take next: up to
  // twice the most one of the last three transactions took from them, so
  // the short commits that end a pass keep what the next pass takes.
  std::vector<uint64_t> released = sm_->EndCommit();
  cache_->set_generation(next->generation + 1);
  std::vector<std::pair<uint64_t, uint64_t>> kept = ReleaseDeferred(/*keep_taken=*/true);
  std::vector<std::pair<uint64_t, uint64_t>> fresh = LongRuns(released, bs_);
  deferred_.clear();
  std::merge(kept.begin(), kept.end(), fresh.begin(), fresh.end(), std::back_inserter(deferred_));
  if (!deferred_.empty()) sm_->PreferFrom(deferred_.front().first);
  return Status::Ok();
}

void TransactionManager::ReleaseDeferred() { (void)ReleaseDeferred(/*keep_taken=*/false); }

std::vector<std::pair<uint64_t, uint64_t>> TransactionManager::ReleaseDeferred(bool keep_taken) {
  std::vector<std::pair<uint64_t, uint64_t>> runs;
  runs.swap(deferred_);
  // The parts still free, in block order: the running transaction (or the
  // one just committed) may have taken some again, and the committed counts
  // are the current ones (nothing has changed since the commit).
  std::vector<std::pair<uint64_t, uint64_t>> free_parts;
  uint64_t total = 0, free_blocks = 0;
  for (const auto& [first, count] : runs) {
    total += count;
    Status st = sm_->ForEachFreeRunIn(first, count, [&](uint64_t b, uint64_t n) {
      free_parts.emplace_back(b, n);
      free_blocks += n;
    });
    if (!st.ok()) return {};  // a hint only: nothing given back, nothing kept
  }
  // The allocator goes through them from the lowest, so the lowest are kept.
  const uint64_t taken = keep_taken ? total - free_blocks : 0;
  uint64_t keep = keep_taken ? 2 * std::max({taken, taken_before_[0], taken_before_[1]}) : 0;
  taken_before_[1] = taken_before_[0];
  taken_before_[0] = taken;
  std::vector<std::pair<uint64_t, uint64_t>> kept;
  for (const auto& [b, n] : free_parts) {
    const uint64_t k = std::min(keep, n);
    if (k > 0) kept.emplace_back(b, k);
    keep -= k;
    // A hint: the blocks are free in the durable state whatever happens.
    if (k < n) (void)store_->Discard((b + k) * bs_, (n - k) * bs_);
  }
  return kept;
}

}  // namespace stack::pool

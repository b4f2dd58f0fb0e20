#include "space_map.h"

#include <algorithm>
#include <map>
#include <unordered_map>

#include "block/endian.h"

namespace stack::pool {

namespace {
uint64_t CeilDiv(uint64_t a, uint64_t b) { return (a + b - 1) / b; }
}  // namespace

SpaceMap::SpaceMap(BlockCache* cache, uint32_t block_size)
    : cache_(cache),
      block_size_(block_size),
      per_sm_(SmEntriesPerBlock(block_size)),
      per_idx_(IndexEntriesPerBlock(block_size)) {}

uint64_t SpaceMap::ReserveBlocks(uint64_t max_blocks, uint32_t block_size) {
  uint64_t n_sm = CeilDiv(max_blocks, SmEntriesPerBlock(block_size));
  uint64_t n_idx = CeilDiv(n_sm, IndexEntriesPerBlock(block_size));
  return n_sm + n_idx + 8;
}

uint64_t SpaceMap::MaxPoolBlocks(uint32_t block_size) {
  return uint64_t(kMaxIndexSlots) * IndexEntriesPerBlock(block_size) *
         SmEntriesPerBlock(block_size);
}

void SpaceMap::Load(uint64_t nr_blocks, uint64_t used_blocks, std::vector<uint64_t> index_locs) {
  nr_blocks_ = nr_blocks;
  used_ = used_blocks;
  freed_pending_ = 0;
  cursor_ = kFirstFreeBlock;
  index_locs_ = std::move(index_locs);
  index_locs_.resize(CeilDiv(CeilDiv(nr_blocks, per_sm_), per_idx_), 0);
  txn_.Clear();
  shadowed_sm_.clear();
  shadowed_idx_.clear();
  released_.clear();
  folding_ = false;
  ForgetCommitted();
}

Result<BlockRef> SpaceMap::ReadCommitted(int which, uint64_t loc, BlockType type, uint64_t key) {
  if (folding_) return cache_->Read(loc, type);
  Memo& m = memo_[which];
  if (m.ref && m.loc == loc) {
    m.key = key;
    return m.ref;
  }
  ASSIGN_OR_RETURN(BlockRef ref, cache_->Read(loc, type));
  m = Memo{loc, key, ref};
  return ref;
}

bool SpaceMap::IsNew(uint64_t b) const {
  const Delta* d = txn_.Find(b);
  return d && d->is_new;
}

Result<uint32_t> SpaceMap::BaseCount(uint64_t b) {
  if (b >= nr_blocks_) {
    return Status::Corruption("reference to physical block " + std::to_string(b) +
                              " beyond the pool's " + std::to_string(nr_blocks_) + " blocks");
  }
  uint64_t smi = b / per_sm_, idx = smi / per_idx_;
  // The space-map block the last lookup read, without the index and the
  // reference count traffic: a write stream asks it once or twice a block.
  if (const Memo& m = memo_[1]; !folding_ && m.ref && m.key == smi) {
    return GetLE32(m.ref->payload() + 4 * (b % per_sm_));
  }
  if (idx >= index_locs_.size() || index_locs_[idx] == 0) return 0u;
  ASSIGN_OR_RETURN(BlockRef ib, ReadCommitted(0, index_locs_[idx], BlockType::kSmIndex, idx));
  uint64_t sl = GetLE64(ib->payload() + 8 * (smi % per_idx_));
  if (sl == 0) return 0u;
  if (sl >= nr_blocks_ || sl < kFirstFreeBlock) {
    return Status::Corruption("space map index block " + std::to_string(index_locs_[idx]) +
                              " points outside the pool (" + std::to_string(sl) + ")");
  }
  ASSIGN_OR_RETURN(BlockRef sb, ReadCommitted(1, sl, BlockType::kSpaceMap, smi));
  return GetLE32(sb->payload() + 4 * (b % per_sm_));
}

Result<uint32_t> SpaceMap::Get(uint64_t b) {
  // A block allocated in this transaction had a committed count of 0, so
  // its count is its delta (until PrepareCommit folds deltas).
  // One probe of the transaction's table serves both uses.
  const Delta* d = txn_.Find(b);
  if (!folding_ && d && d->is_new) return static_cast<uint32_t>(d->delta);
  const int64_t pending = d ? d->delta : 0;
  ASSIGN_OR_RETURN(uint32_t base, BaseCount(b));
  return static_cast<uint32_t>(int64_t(base) + pending);
}

Status SpaceMap::Inc(uint64_t b) {
  ASSIGN_OR_RETURN(uint32_t v, Get(b));
  if (v == 0) {
    return Status::Corruption("reference added to free physical block " + std::to_string(b));
  }
  if (v == UINT32_MAX) {
    return Status::Unsupported("reference count of physical block " + std::to_string(b) +
                               " would overflow");
  }
  txn_[b].delta += 1;
  if (folding_) touched_.push_back(b);
  return Status::Ok();
}

Result<uint32_t> SpaceMap::Dec(uint64_t b) {
  ASSIGN_OR_RETURN(uint32_t v, Get(b));
  if (v == 0) {
    return Status::Corruption("reference count of physical block " + std::to_string(b) +
                              " would drop below zero");
  }
  Delta& d = txn_[b];
  d.delta -= 1;
  if (folding_) touched_.push_back(b);
  if (v == 1) {
    --used_;
    d.freed = true;
    ++freed_pending_;
  }
  return v - 1;
}

Result<uint64_t> SpaceMap::AllocOne() {
  uint64_t b = 0;
  ASSIGN_OR_RETURN(uint64_t got, AllocUpTo(1, &b));
  (void)got;
  return b;
}

Result<uint64_t> SpaceMap::AllocUpTo(uint64_t want, uint64_t* out) {
  if (available() == 0) return Status::NoSpace("pool has no free block");
  uint64_t got = 0;
  // Two passes: from the cursor to the end, then from the start.
  for (int pass = 0; pass < 2; ++pass) {
    uint64_t b = pass == 0 ? cursor_ : kFirstFreeBlock;
    uint64_t end = pass == 0 ? nr_blocks_ : std::min(cursor_, nr_blocks_);
    while (b < end) {
      uint64_t smi = b / per_sm_, idx = smi / per_idx_;
      uint64_t sm_end = std::min(end, (smi + 1) * per_sm_);
      BlockRef sb;
      if (idx < index_locs_.size() && index_locs_[idx] != 0) {
        ASSIGN_OR_RETURN(BlockRef ib,
                         ReadCommitted(0, index_locs_[idx], BlockType::kSmIndex, idx));
        uint64_t sl = GetLE64(ib->payload() + 8 * (smi % per_idx_));
        if (sl != 0) {
          if (sl >= nr_blocks_) return Status::Corruption("space map index points outside pool");
          ASSIGN_OR_RETURN(sb, ReadCommitted(1, sl, BlockType::kSpaceMap, smi));
        }
      }
      for (; b < sm_end; ++b) {
        // A block with a committed count is never allocatable in this
        // transaction (if it was freed, it waits for the commit), so only
        // zero counts need the transaction lookup: the scan over a full
        // region is a plain load per block.
        if (sb) {
          const uint8_t* p = sb->payload() + 4 * (b % per_sm_);
          const uint8_t* end_p = sb->payload() + 4 * (sm_end - smi * per_sm_);
          while (p < end_p && LoadLE32(p) != 0) p += 4;
          b = smi * per_sm_ + uint64_t(p - sb->payload()) / 4;
          if (b >= sm_end) break;
        }
        // One probe: an absent block is inserted at zero, as it is claimed.
        Delta& d = txn_[b];
        if (d.freed || d.delta != 0) continue;
        d.delta += 1;
        d.is_new = true;
        ++used_;
        cursor_ = b + 1;
        if (folding_) touched_.push_back(b);
        out[got] = b;
        // The next block is claimed in the same scan, with the space-map
        // block at hand (a run costs one scan, not one per block).
        if (++got == want || available() == 0) return got;
      }
    }
  }
  if (got > 0) return got;
  return Status::Internal("space map: available() > 0 but no free block found");
}

Result<uint64_t> SpaceMap::Alloc() { return AllocOne(); }

Status SpaceMap::Claim(uint64_t b) {
  ASSIGN_OR_RETURN(uint32_t v, Get(b));
  if (v != 0) return Status::Internal("claiming a used block " + std::to_string(b));
  Delta& d = txn_[b];
  d.delta += 1;
  d.is_new = true;
  ++used_;
  if (folding_) touched_.push_back(b);
  return Status::Ok();
}

Status SpaceMap::AllocMany(uint64_t n, std::vector<uint64_t>* out) {
  if (available() < n) return Status::NoSpace("pool has too few free blocks");
  const size_t start = out->size();
  out->resize(start + n);
  for (uint64_t got = 0; got < n;) {
    auto r = AllocUpTo(n - got, out->data() + start + got);
    if (!r.ok()) {
      for (size_t k = start; k < start + got; ++k) {
        auto d = Dec((*out)[k]);
        (void)d;
      }
      out->resize(start);
      return r.status();
    }
    got += *r;
  }
  return Status::Ok();
}

Status SpaceMap::Grow(uint64_t new_nr_blocks) {
  if (new_nr_blocks < nr_blocks_) return Status::InvalidArgument("space map cannot shrink");
  if (new_nr_blocks > MaxPoolBlocks(block_size_)) {
    return Status::InvalidArgument("pool of " + std::to_string(new_nr_blocks) +
                                   " blocks exceeds the format limit");
  }
  nr_blocks_ = new_nr_blocks;
  index_locs_.resize(CeilDiv(CeilDiv(nr_blocks_, per_sm_), per_idx_), 0);
  return Status::Ok();
}

Result<BlockRef> SpaceMap::ShadowIndex(uint64_t idx) {
  uint64_t old = index_locs_[idx];
  if (shadowed_idx_.count(idx)) return cache_->Read(old, BlockType::kSmIndex);
  ASSIGN_OR_RETURN(uint64_t nl, AllocOne());
  BlockRef nb = cache_->Create(nl, BlockType::kSmIndex);
  if (old != 0) {
    ASSIGN_OR_RETURN(BlockRef ob, cache_->Read(old, BlockType::kSmIndex));
    std::copy(ob->data.begin() + kHeaderSize, ob->data.end(), nb->data.begin() + kHeaderSize);
    RETURN_IF_ERROR(Dec(old).status());
  }
  index_locs_[idx] = nl;
  shadowed_idx_.insert(idx);
  return nb;
}

Result<BlockRef> SpaceMap::ShadowSm(uint64_t smi) {
  uint64_t idx = smi / per_idx_, slot = smi % per_idx_;
  ASSIGN_OR_RETURN(BlockRef ib, ShadowIndex(idx));
  uint64_t old = GetLE64(ib->payload() + 8 * slot);
  if (shadowed_sm_.count(smi)) return cache_->Read(old, BlockType::kSpaceMap);
  ASSIGN_OR_RETURN(uint64_t nl, AllocOne());
  BlockRef nb = cache_->Create(nl, BlockType::kSpaceMap);
  if (old != 0) {
    ASSIGN_OR_RETURN(BlockRef ob, cache_->Read(old, BlockType::kSpaceMap));
    std::copy(ob->data.begin() + kHeaderSize, ob->data.end(), nb->data.begin() + kHeaderSize);
    RETURN_IF_ERROR(Dec(old).status());
  }
  PutLE64(ib->payload() + 8 * slot, nl);
  ib->MarkDirty();
  shadowed_sm_.insert(smi);
  return nb;
}

Status SpaceMap::PrepareCommit() {
  // Stays set until EndCommit/Load: folded deltas are no longer in txn_.
  folding_ = true;
  ForgetCommitted();
  return FoldDeltas();
}

Status SpaceMap::FoldDeltas() {
  // Two phases. First every space-map block holding a changed count is
  // shadowed, before any count is folded: shadowing allocates and frees
  // blocks itself (changing counts in further space-map blocks, shadowed in
  // turn: touched_), and allocation must see the whole transaction's deltas
  // unfolded. Then one pass over the table folds each delta into its
  // shadow: no sort and no per-block lookup (this pass was a sort plus a
  // hash probe per changed block, a tenth of a served rewrite's CPU).
  const uint64_t nr_sm = CeilDiv(nr_blocks_, per_sm_);
  std::vector<bool> wanted(nr_sm, false);
  std::unordered_map<uint64_t, uint8_t*> payload;  // smi -> its shadow's counts
  std::vector<BlockRef> shadows;                    // keeps them in the cache
  std::vector<uint64_t> work;
  auto want = [&](uint64_t b) {
    const uint64_t smi = b / per_sm_;
    if (smi < nr_sm && !wanted[smi]) {
      wanted[smi] = true;
      work.push_back(smi);
    }
  };
  txn_.ForEach([&](uint64_t b, const Delta& d) {
    if (d.delta != 0) want(b);
  });
  while (!work.empty()) {
    std::vector<uint64_t> smis;
    smis.swap(work);
    std::sort(smis.begin(), smis.end());  // index blocks in order
    touched_.clear();
    for (uint64_t smi : smis) {
      ASSIGN_OR_RETURN(BlockRef sb, ShadowSm(smi));
      payload.emplace(smi, sb->payload());
      shadows.push_back(std::move(sb));
    }
    for (uint64_t b : touched_) want(b);
  }
  Status bad = Status::Ok();
  txn_.ForEach([&](uint64_t b, Delta& d) {
    if (d.delta == 0 || !bad.ok()) return;
    const auto it = payload.find(b / per_sm_);
    if (it == payload.end()) {
      bad = Status::Corruption("space map: a count changed for block " + std::to_string(b) +
                               " beyond the pool's " + std::to_string(nr_blocks_) + " blocks");
      return;
    }
    uint8_t* p = it->second + 4 * (b % per_sm_);
    const int64_t nv = int64_t(GetLE32(p)) + d.delta;
    if (nv < 0 || nv > int64_t(UINT32_MAX)) {
      bad = Status::Internal("space map count out of range for block " + std::to_string(b));
      return;
    }
    PutLE32(p, static_cast<uint32_t>(nv));
    if (nv == 0 && d.delta < 0) released_.push_back(b);
    d.delta = 0;
  });
  for (BlockRef& sb : shadows) sb->MarkDirty();
  return bad;
}

Status SpaceMap::ForEachFreeRun(uint64_t min_blocks,
                                const std::function<void(uint64_t, uint64_t)>& fn) {
  return FreeRuns(kFirstFreeBlock, nr_blocks_, min_blocks, fn);
}

Status SpaceMap::ForEachFreeRunIn(uint64_t first, uint64_t count,
                                  const std::function<void(uint64_t, uint64_t)>& fn) {
  const uint64_t lo = std::max<uint64_t>(first, kFirstFreeBlock);
  const uint64_t hi = first + std::min(count, nr_blocks_ > first ? nr_blocks_ - first : 0);
  return lo < hi ? FreeRuns(lo, hi, 1, fn) : Status::Ok();
}

Status SpaceMap::FreeRuns(uint64_t lo, uint64_t hi, uint64_t min_blocks,
                          const std::function<void(uint64_t, uint64_t)>& fn) {
  if (changed()) return Status::Internal("free runs asked for inside a transaction");
  uint64_t run = lo;  // start of the current free run
  auto used = [&](uint64_t b) {
    if (b > run && b - run >= min_blocks) fn(run, b - run);
    run = b + 1;
  };
  for (uint64_t smi = lo / per_sm_; smi * per_sm_ < hi; ++smi) {
    const uint64_t from = std::max(smi * per_sm_, lo);
    const uint64_t to = std::min(hi, (smi + 1) * per_sm_);
    const uint64_t idx = smi / per_idx_;
    if (idx >= index_locs_.size() || index_locs_[idx] == 0) continue;  // all free
    ASSIGN_OR_RETURN(BlockRef ib, cache_->Read(index_locs_[idx], BlockType::kSmIndex));
    const uint64_t sl = GetLE64(ib->payload() + 8 * (smi % per_idx_));
    if (sl == 0) continue;
    if (sl >= nr_blocks_) return Status::Corruption("space map index points outside pool");
    ASSIGN_OR_RETURN(BlockRef sb, cache_->Read(sl, BlockType::kSpaceMap));
    for (uint64_t b = from; b < to; ++b) {
      if (LoadLE32(sb->payload() + 4 * (b - smi * per_sm_)) != 0) used(b);
    }
  }
  if (hi > run && hi - run >= min_blocks) fn(run, hi - run);
  return Status::Ok();
}

std::vector<uint64_t> SpaceMap::EndCommit() {
  std::vector<uint64_t> released;
  released.swap(released_);
  // Blocks allocated and freed within this transaction (data written and
  // then discarded, a failed edit's data) never had a committed count, so
  // folding saw no change; their bytes are on the store all the same.
  txn_.ForEach([&](uint64_t b, const Delta& d) {
    if (d.is_new && d.freed) released.push_back(b);
  });
  folding_ = false;
  ForgetCommitted();
  touched_.clear();
  txn_.Clear();
  shadowed_sm_.clear();
  shadowed_idx_.clear();
  freed_pending_ = 0;
  std::sort(released.begin(), released.end());
  return released;
}

}  // namespace stack::pool

#include "mapping_cache.h"

#include <algorithm>
#include <bit>

#include <sys/mman.h>

namespace stack::pool {

MappingCache::MappingCache(size_t budget_bytes)
    : max_chunks_(std::max<size_t>(budget_bytes / sizeof(Chunk), 16)),
      slots_(std::bit_ceil(2 * max_chunks_)) {
  constexpr size_t kHuge = 2 << 20;
  arena_bytes_ = (max_chunks_ * sizeof(Chunk) + kHuge - 1) / kHuge * kHuge;
  void* p = ::mmap(nullptr, arena_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
  if (p == MAP_FAILED) {
    arena_bytes_ = 0;
    return;  // no cache: every lookup walks the tree
  }
  (void)::madvise(p, arena_bytes_, MADV_HUGEPAGE);  // best effort
  arena_ = static_cast<Chunk*>(p);
  free_.reserve(max_chunks_);
  for (size_t i = max_chunks_; i > 0; --i) free_.push_back(i - 1);
}

MappingCache::~MappingCache() {
  if (arena_) ::munmap(arena_, arena_bytes_);
}

size_t MappingCache::Home(uint64_t id, uint64_t chunk) const {
  uint64_t h = (chunk ^ (id * 0x9E3779B97F4A7C15ull)) * 0xff51afd7ed558ccdull;
  return static_cast<size_t>(h >> 17) & (slots_.size() - 1);
}

size_t MappingCache::Locate(uint64_t id, uint64_t chunk) const {
  const size_t mask = slots_.size() - 1;
  for (size_t i = Home(id, chunk);; i = (i + 1) & mask) {
    const Slot& s = slots_[i];
    if (s.id == 0) return slots_.size();
    if (s.id == id && s.chunk == chunk) return i;
  }
}

const MappingCache::Chunk* MappingCache::Find(uint64_t id, uint64_t key) const {
  const size_t i = Locate(id, key / kChunkBlocks);
  return i == slots_.size() ? nullptr : &arena_[slots_[i].index];
}

void MappingCache::EraseAt(size_t i) {
  const size_t mask = slots_.size() - 1;
  free_.push_back(slots_[i].index);
  slots_[i] = Slot{};
  --used_;
  // Move back every later slot of the run that could live at i.
  for (size_t j = (i + 1) & mask; slots_[j].id != 0; j = (j + 1) & mask) {
    const size_t home = Home(slots_[j].id, slots_[j].chunk);
    // j's probe run passes through i when home is cyclically in (j, i].
    const bool reaches_i = i <= j ? (home <= i || home > j) : (home <= i && home > j);
    if (reaches_i) {
      slots_[i] = std::move(slots_[j]);
      slots_[j] = Slot{};
      i = j;
    }
  }
}

void MappingCache::EraseChunk(uint64_t id, uint64_t chunk) {
  const size_t i = Locate(id, chunk);
  if (i != slots_.size()) EraseAt(i);
}

MappingCache::Chunk* MappingCache::Insert(uint64_t id, uint64_t key) {
  if (!arena_) return nullptr;
  const uint64_t chunk = key / kChunkBlocks;
  EraseChunk(id, chunk);
  while (used_ >= max_chunks_ && !order_.empty()) {
    auto [old_id, old_chunk] = order_.front();
    order_.pop_front();
    EraseChunk(old_id, old_chunk);
  }
  if (order_.size() >= 2 * max_chunks_) {
    // Drop the names of chunks erased since (keeping the order of the rest).
    std::deque<std::pair<uint64_t, uint64_t>> live;
    for (auto& p : order_)
      if (Locate(p.first, p.second) != slots_.size()) live.push_back(p);
    order_.swap(live);
  }
  const size_t mask = slots_.size() - 1;
  size_t i = Home(id, chunk);
  while (slots_[i].id != 0) i = (i + 1) & mask;
  const size_t index = free_.back();
  free_.pop_back();
  arena_[index] = Chunk{};
  slots_[i] = Slot{id, chunk, index};
  ++used_;
  order_.emplace_back(id, chunk);
  return &arena_[index];
}

void MappingCache::EraseRange(uint64_t id, uint64_t first, uint64_t end) {
  if (used_ == 0 || first >= end) return;
  const uint64_t c0 = first / kChunkBlocks, c1 = (end - 1) / kChunkBlocks;
  if (c1 - c0 < used_) {
    for (uint64_t c = c0; c <= c1; ++c) EraseChunk(id, c);
    return;
  }
  // A range wider than the cache: one pass over it instead. Erasing shifts
  // later slots back, so the slot just emptied is looked at again.
  for (size_t i = 0; i < slots_.size();) {
    const Slot& s = slots_[i];
    if (s.id == id && s.chunk >= c0 && s.chunk <= c1) {
      EraseAt(i);
    } else {
      ++i;
    }
  }
}

void MappingCache::EraseEntry(uint64_t id) { EraseRange(id, 0, UINT64_MAX); }

void MappingCache::Clear() {
  for (Slot& s : slots_) {
    if (s.id != 0) free_.push_back(s.index);
    s = Slot{};
  }
  used_ = 0;
  order_.clear();
}

}  // namespace stack::pool

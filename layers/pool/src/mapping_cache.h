// MappingCache: the decoded mappings of volume tree leaves, for lookups
// that do not walk the tree.
//
// A one-block read (the random-read case) walked root -> leaf through the
// metadata cache: a hash lookup, a node check and a binary search per
// level, each a cache miss on a large volume. Here the mappings of 256
// consecutive logical blocks of one entry (a "chunk") sit in one array: a
// lookup is a hash probe and an index. Only memory: nothing here is on disk.
//
// The owner keeps it exact: every change to an entry's mappings erases the
// chunks it touches (EraseRange), an entry whose whole tree is replaced or
// removed is erased (EraseEntry), and reloading the pool clears it. A chunk
// is filled from the tree as it stands under the same lock.
//
// Thread-safety: none; the pool calls it under its lock.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "btree.h"

namespace stack::pool {

class MappingCache {
 public:
  static constexpr uint64_t kChunkBlocks = 256;

  // The mappings of logical blocks [base, base + kChunkBlocks) of one
  // entry; phys 0 (never a data block) marks an unmapped block.
  struct Chunk {
    std::array<Mapping, kChunkBlocks> maps{};
    bool Has(uint64_t key) const { return maps[key % kChunkBlocks].phys != 0; }
    void Set(uint64_t key, const Mapping& m) { maps[key % kChunkBlocks] = m; }
    const Mapping& Get(uint64_t key) const { return maps[key % kChunkBlocks]; }
  };

  // Holds at most max(budget_bytes / sizeof(Chunk), 16) chunks, in one
  // mapping reserved now and touched as chunks are filled (huge pages where
  // the kernel gives them: a lookup then rarely misses the TLB).
  explicit MappingCache(size_t budget_bytes);
  ~MappingCache();
  MappingCache(const MappingCache&) = delete;
  MappingCache& operator=(const MappingCache&) = delete;

  // The chunk holding entry `id`'s block `key`, or nullptr.
  const Chunk* Find(uint64_t id, uint64_t key) const;
  // A new empty chunk for entry `id`'s block `key` (replacing any), for the
  // caller to fill completely before the next call; evicts the oldest
  // chunk when full. nullptr if the cache has no memory (nothing cached).
  Chunk* Insert(uint64_t id, uint64_t key);
  // Forget the chunks of `id` covering blocks [first, end).
  void EraseRange(uint64_t id, uint64_t first, uint64_t end);
  // Forget every chunk of `id`.
  void EraseEntry(uint64_t id);
  void Clear();
  size_t size() const { return used_; }

 private:
  // Open addressing with linear probing: a lookup touches one slot line and
  // then the chunk (the random-read path is bound by cache misses).
  struct Slot {
    uint64_t id = 0;  // 0: empty (entry ids start at 1)
    uint64_t chunk = 0;
    size_t index = 0;  // into arena_
  };
  size_t Home(uint64_t id, uint64_t chunk) const;
  // The slot index of (id, chunk), or slots_.size().
  size_t Locate(uint64_t id, uint64_t chunk) const;
  void EraseAt(size_t i);  // backward-shift deletion keeps probe runs whole
  void EraseChunk(uint64_t id, uint64_t chunk);

  size_t max_chunks_;
  size_t used_ = 0;
  Chunk* arena_ = nullptr;  // max_chunks_ chunks (mmap), or nullptr
  size_t arena_bytes_ = 0;
  std::vector<size_t> free_;  // arena indices not in use
  std::vector<Slot> slots_;  // a power of two, at least twice max_chunks_
  // Insertion order for eviction; may name chunks already erased (skipped),
  // compacted when it grows past twice the cache.
  std::deque<std::pair<uint64_t, uint64_t>> order_;
};

}  // namespace stack::pool

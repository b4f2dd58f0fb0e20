// DeltaTable: the space map's per-block changes of the running transaction,
// block number -> Delta, in one flat open-addressing array (linear probing).
//
// Why not std::unordered_map: a copy-on-write write stream adds two entries
// per block (the new block and the one it replaces), hundreds of thousands
// per transaction, and a node per entry made malloc, free and their cache
// misses a tenth of the write path's CPU (nbd.seq_write profile). Entries
// are never erased inside a transaction, so the table needs no tombstones.
//
// Pointers and references into the table are invalidated by any insertion
// (it may grow). Thread-safety: none.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

namespace stack::pool {

struct Delta {
  int64_t delta = 0;
  bool is_new = false;  // allocated in this transaction
  bool freed = false;   // count reached zero in this transaction
};

class DeltaTable {
 public:
  DeltaTable() { Reset(kMinSlots); }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  // The entry of block b, or nullptr.
  const Delta* Find(uint64_t b) const {
    for (size_t i = Slot(b);; i = (i + 1) & mask_) {
      if (slots_[i].key == b) return &slots_[i].value;
      if (slots_[i].key == kEmpty) return nullptr;
    }
  }
  Delta* Find(uint64_t b) {
    return const_cast<Delta*>(static_cast<const DeltaTable*>(this)->Find(b));
  }

  // The entry of block b, inserted (zero) if absent.
  Delta& operator[](uint64_t b) {
    // At most half full: a lookup of an absent block (most of them) stops
    // at the first empty slot after about 2.5 probes.
    if ((size_ + 1) * 2 > slots_.size()) Rehash(slots_.size() * 2);
    size_t i = Slot(b);
    for (; slots_[i].key != kEmpty; i = (i + 1) & mask_) {
      if (slots_[i].key == b) return slots_[i].value;
    }
    slots_[i].key = b;
    slots_[i].value = Delta{};
    ++size_;
    return slots_[i].value;
  }

  // fn(block, Delta&) for every entry, in no particular order. fn must not
  // insert.
  template <typename Fn>
  void ForEach(Fn&& fn) {
    for (Entry& e : slots_) {
      if (e.key != kEmpty) fn(e.key, e.value);
    }
  }

  // Forgets every entry. A table grown far beyond what it held shrinks once
  // kShrinkAfter transactions in a row held that little, so a run of small
  // transactions does not clear a large array each time; one small
  // transaction between large ones (a receive's resume-point commit between
  // its data commits) keeps it, instead of growing it back through fresh,
  // faulted-in memory each time.
  void Clear() {
    const size_t want = std::max(kMinSlots, Pow2AtLeast(size_ * 2));
    small_clears_ = slots_.size() > 4 * want ? small_clears_ + 1 : 0;
    if (small_clears_ >= kShrinkAfter) {
      Reset(want);
      small_clears_ = 0;
    } else {
      for (Entry& e : slots_) e.key = kEmpty;
    }
    size_ = 0;
  }

  // Slots allocated (for tests of the growth and shrink policy).
  size_t slot_count() const { return slots_.size(); }

 private:
  static constexpr uint64_t kEmpty = std::numeric_limits<uint64_t>::max();
  static constexpr size_t kMinSlots = 1024;
  static constexpr unsigned kShrinkAfter = 8;
  struct Entry {
    uint64_t key = kEmpty;
    Delta value;
  };

  static size_t Pow2AtLeast(size_t n) {
    size_t p = 1;
    while (p < n) p <<= 1;
    return p;
  }
  size_t Slot(uint64_t b) const {
    // Fibonacci hashing (the product's top bits): consecutive blocks, a
    // write stream's, spread evenly.
    return size_t((b * 0x9E3779B97F4A7C15ull) >> shift_);
  }
  void Reset(size_t slots) {
    slots_.assign(slots, Entry{});
    mask_ = slots - 1;
    shift_ = 64;
    for (size_t s = slots; s > 1; s >>= 1) --shift_;
  }
  void Rehash(size_t slots) {
    std::vector<Entry> old;
    old.swap(slots_);
    Reset(slots);
    for (const Entry& e : old) {
      if (e.key == kEmpty) continue;
      size_t i = Slot(e.key);
      while (slots_[i].key != kEmpty) i = (i + 1) & mask_;
      slots_[i] = e;
    }
  }

  std::vector<Entry> slots_;
  size_t mask_ = 0;
  unsigned shift_ = 64;
  size_t size_ = 0;
  unsigned small_clears_ = 0;  // Clear()s in a row of a table far too large
};

}  // namespace stack::pool

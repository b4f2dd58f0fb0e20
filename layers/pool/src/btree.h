// BTree: a copy-on-write, reference-counted B+tree of u64 keys and 16-byte
// values (Rodeh's "B-trees, Shadowing, and Clones"; spec/pool-format.md,
// "Btree nodes"). A volume tree (kVolumeTree) maps a volume's logical
// block number to {physical block, data checksum} and its values hold
// references on the data blocks; the entry tree and name index
// (entry_table.h) use opaque values.
//
// A tree is named by its root block (0 = empty tree). Several volumes and
// snapshots may share a root or any subtree; a node's reference count is
// the number of roots/parents pointing at it and a data block's count is
// the number of leaf entries pointing at it (a shared leaf counts once).
// Mutations shadow the path from the root down (TransactionManager), so a
// snapshot is just IncRoot(). Leaves hold values sorted by key; internal
// key[i] is a lower bound of every key under child i, and keys under child
// i are below key[i+1]. Underfull nodes are not merged; empty ones are
// removed. Lookups cost O(depth) whatever the number of snapshots.
//
// Every mutating call leaves the tree and the reference counts consistent
// on OK. On error the transaction must be abandoned (the pool reloads the
// last commit).
// Thread-safety: none.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "transaction.h"

namespace stack::pool {

struct Mapping {
  uint64_t phys = 0;
  uint64_t csum = 0;
};

// What a paired walk of two trees (BTree::Diff) found and read.
struct TreeDiffStats {
  uint64_t nodes_visited = 0;  // nodes read
  uint64_t shared_nodes = 0;   // subtrees skipped because both sides hold the same node
  uint64_t shared_blocks = 0;  // keys mapped to the same data block on both sides
};

class BTree {
 public:
  // `kind`: node types and whether leaf values are data-block references
  // (format.h). Trees of other kinds keep opaque 16-byte values.
  BTree(TransactionManager* tm, uint32_t block_size, const TreeKind& kind);
  const TreeKind& kind() const { return kind_; }

  uint32_t leaf_capacity() const { return leaf_cap_; }
  uint32_t internal_capacity() const { return int_cap_; }

  Result<std::optional<Mapping>> Lookup(uint64_t root, uint64_t key);
  // Inserts or replaces key. A replaced value's data block loses one
  // reference (unless it is the same block). *added is true for a new key.
  Status Insert(uint64_t* root, uint64_t key, Mapping value, bool* added);
  // Inserts or replaces the consecutive keys first, first + 1, ... (one per
  // value): the same mappings and reference counts as Insert of each in
  // turn, node shapes aside. It descends once, shadows each node on the way
  // once and splits an overfull node into as many nodes as its entries
  // need, within CostBound(root, first, first + values.size(), values.size()).
  // *added: how many keys were new. REQUIRES: first + values.size() does
  // not wrap.
  Status InsertRun(uint64_t* root, uint64_t first, std::span<const Mapping> values,
                   uint64_t* added);
  // Removes key if present (its data block loses one reference).
  Status Remove(uint64_t* root, uint64_t key, bool* removed);
  // Calls fn(key, mapping) for mapped keys in [lo, hi) in order until it
  // returns false. Keys are handed out strictly rising and within [lo, hi):
  // a damaged node that would break that is Corruption.
  Status ForEach(uint64_t root, uint64_t lo, uint64_t hi,
                 const std::function<bool(uint64_t, const Mapping&)>& fn);
  // A difference at `key`: from/to are the two sides' mappings (nullptr:
  // unmapped); the data blocks differ or one side is unmapped.
  using DiffFn = std::function<Status(uint64_t key, const Mapping* from, const Mapping* to)>;
  // Calls fn for every key in [lo, hi) whose mapping differs between the
  // trees `from_root` and `to_root`, keys strictly rising, until fn fails
  // (its error is returned). A subtree both sides reference at the same
  // node address is skipped without being read; elsewhere the walk descends
  // both trees in step (whatever their shapes), so it reads the nodes on
  // the paths to what differs, plus the nodes where the two shapes differ.
  // Trees that share nothing are compared leaf by leaf. `stats` accumulates.
  Status Diff(uint64_t from_root, uint64_t to_root, uint64_t lo, uint64_t hi, const DiffFn& fn,
              TreeDiffStats* stats);
  // One more owner of the tree (snapshot, clone): O(1).
  Status IncRoot(uint64_t root);
  // One owner fewer; frees every node and data block nobody else holds.
  Status DecRoot(uint64_t root);
  // Upper bound on blocks a change of `n` keys within [lo, hi) may allocate
  // (shadowed nodes plus splits), not counting data blocks.
  Result<uint64_t> CostBound(uint64_t root, uint64_t lo, uint64_t hi, uint64_t n);
  // Nodes on the paths to the keys within [lo, hi): what removing them all
  // may shadow.
  Result<uint64_t> RangeNodes(uint64_t root, uint64_t lo, uint64_t hi);

 private:
  struct InsertOut {
    uint64_t loc = 0;
    bool split = false;
    uint64_t split_key = 0;
    uint64_t right = 0;
    uint64_t leaf = 0;     // leaf the key landed in, if nothing split
    uint64_t leaf_hi = 0;  // exclusive upper bound of that leaf's keys
  };
  Status IncChildren(const CachedBlock& b);
  // `level` is the level the node must have (-1: a root, any level).
  // `hi`: exclusive upper bound of the keys this subtree may hold.
  Status InsertRec(uint64_t loc, int level, uint64_t hi, uint64_t key, const Mapping& v,
                   bool* added, InsertOut* out);
  // InsertRun below one node: out gets the node's new address and the
  // nodes it split off, {first key, address} ascending.
  struct RunOut {
    uint64_t loc = 0;
    std::vector<std::pair<uint64_t, uint64_t>> right;
  };
  Status InsertRunRec(uint64_t loc, int level, uint64_t first, std::span<const Mapping> v,
                      uint64_t* added, RunOut* out);
  // Puts `count` entries (the node's entry size each) from src into b, and
  // what does not fit into new nodes of b's type and level, all about
  // equally full; the new ones are appended to out->right.
  Status Spread(CachedBlock& b, const uint8_t* src, uint32_t count, RunOut* out);
  Status RemoveRec(uint64_t loc, int level, uint64_t key, uint64_t* new_loc, bool* empty);
  struct Walk {
    bool stop = false;
    bool emitted = false;  // prev holds the last key handed out
    uint64_t prev = 0;
    uint64_t visits = 0;   // nodes read so far
  };
  Status ForEachRec(uint64_t loc, int level, uint64_t lo, uint64_t hi, Walk* w,
                    const std::function<bool(uint64_t, const Mapping&)>& fn);
  // One side of a paired walk: a node by address, read once (node).
  struct DiffSide {
    uint64_t loc = 0;
    int level = -1;  // the level the node must have (-1: a root)
    BlockRef node;   // null until read
  };
  struct DiffWalk {
    TreeDiffStats* stats;
    uint64_t limit;  // most nodes a walk of two sound trees can read
    const DiffFn* fn;
  };
  Status DiffLoad(DiffSide* s, DiffWalk* w);
  Status DiffRec(DiffSide a, DiffSide b, uint64_t lo, uint64_t hi, DiffWalk* w);
  // Every mapped key of one side's subtree within [lo, hi) as a difference
  // (the other side holds nothing there).
  Status DiffOneSide(DiffSide s, bool is_from, uint64_t lo, uint64_t hi, DiffWalk* w);
  Status CountRec(uint64_t loc, int level, uint64_t lo, uint64_t hi, uint64_t* nodes,
                  uint32_t* depth);
  Status DecRec(uint64_t loc, int level);

  TransactionManager* tm_;
  TreeKind kind_;
  // Append hint for ascending inserts (see Insert); 0 = none.
  uint64_t hint_root_ = 0, hint_leaf_ = 0, hint_hi_ = 0;
  std::vector<uint8_t> merge_;  // InsertRun's leaf merge buffer, kept between calls
  uint32_t leaf_cap_;
  uint32_t int_cap_;
};

// Node layout helpers (also used by check and the fuzzer).
namespace node {
constexpr uint32_t kEntries = kHeaderSize + 16;
inline uint32_t LeafCapacity(uint32_t bs) { return (bs - kEntries) / 24; }
inline uint32_t InternalCapacity(uint32_t bs) { return (bs - kEntries) / 16; }
// The readers are inline: every volume read runs them once per level.
inline uint32_t Count(const CachedBlock& b) { return LoadLE32(b.data.data() + kHeaderSize); }
inline uint32_t Level(const CachedBlock& b) { return LoadLE32(b.data.data() + kHeaderSize + 4); }
// Bytes per entry: 24 in a leaf (key, 16-byte value), 16 in an internal node.
inline uint32_t EntrySize(const CachedBlock& b) { return Level(b) == 0 ? 24 : 16; }
inline const uint8_t* EntryAt(const CachedBlock& b, uint32_t i) {
  return b.data.data() + kEntries + size_t(i) * EntrySize(b);
}
void SetCount(CachedBlock& b, uint32_t n);
void SetLevel(CachedBlock& b, uint32_t level);
inline uint64_t Key(const CachedBlock& b, uint32_t i) { return LoadLE64(EntryAt(b, i)); }
// Leaf values.
inline Mapping Value(const CachedBlock& b, uint32_t i) {
  const uint8_t* p = EntryAt(b, i);
  return Mapping{LoadLE64(p + 8), LoadLE64(p + 16)};
}
// Internal children.
inline uint64_t Child(const CachedBlock& b, uint32_t i) { return LoadLE64(EntryAt(b, i) + 8); }
// Structural check of one node's header fields against its block size.
Status Validate(const CachedBlock& b, uint32_t block_size);
}  // namespace node

}  // namespace stack::pool

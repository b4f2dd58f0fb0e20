#include "btree.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "block/endian.h"

namespace stack::pool {
namespace node {

namespace {
uint8_t* At(CachedBlock& b, uint32_t i) { return b.data.data() + kEntries + i * EntrySize(b); }
}  // namespace

void SetCount(CachedBlock& b, uint32_t n) { PutLE32(b.data.data() + kHeaderSize, n); }
void SetLevel(CachedBlock& b, uint32_t level) { PutLE32(b.data.data() + kHeaderSize + 4, level); }

void SetLeafEntry(CachedBlock& b, uint32_t i, uint64_t key, const Mapping& v) {
  uint8_t* p = At(b, i);
  PutLE64(p, key);
  PutLE64(p + 8, v.phys);
  PutLE64(p + 16, v.csum);
}
void SetInternalEntry(CachedBlock& b, uint32_t i, uint64_t key, uint64_t child) {
  uint8_t* p = At(b, i);
  PutLE64(p, key);
  PutLE64(p + 8, child);
}
void SetKey(CachedBlock& b, uint32_t i, uint64_t key) { PutLE64(At(b, i), key); }
void SetChild(CachedBlock& b, uint32_t i, uint64_t child) { PutLE64(At(b, i) + 8, child); }

// Opens a gap at i (shifting [i, n) right by one). REQUIRES: n < capacity.
void OpenGap(CachedBlock& b, uint32_t i) {
  uint32_t n = Count(b), es = EntrySize(b);
  std::memmove(At(b, i) + es, At(b, i), size_t(n - i) * es);
  SetCount(b, n + 1);
}
void Erase(CachedBlock& b, uint32_t i) {
  uint32_t n = Count(b), es = EntrySize(b);
  std::memmove(At(b, i), At(b, i) + es, size_t(n - i - 1) * es);
  SetCount(b, n - 1);
}
// Moves entries [from, n) of src to the start of the empty dst.
void MoveTail(CachedBlock& src, uint32_t from, CachedBlock& dst) {
  uint32_t n = Count(src), es = EntrySize(src);
  std::memcpy(At(dst, 0), At(src, from), size_t(n - from) * es);
  SetCount(dst, n - from);
  SetCount(src, from);
}
// The searches below are the hot path of every read (a binary search per
// level): the entry stride and base are taken once, not per probe.
// First index whose key is >= key.
uint32_t LowerBound(const CachedBlock& b, uint64_t key) {
  const uint8_t* base = b.data.data() + kEntries;
  const uint32_t es = EntrySize(b);
  uint32_t lo = 0, hi = Count(b);
  while (lo < hi) {
    uint32_t mid = (lo + hi) / 2;
    if (LoadLE64(base + size_t(mid) * es) < key) lo = mid + 1; else hi = mid;
  }
  return lo;
}
// Child slot for key in an internal node: last i with key[i] <= key, or 0.
uint32_t ChildSlot(const CachedBlock& b, uint64_t key) {
  const uint8_t* base = b.data.data() + kEntries;
  const uint32_t es = EntrySize(b);
  uint32_t lo = 0, hi = Count(b);
  while (lo < hi) {
    uint32_t mid = (lo + hi) / 2;
    if (LoadLE64(base + size_t(mid) * es) <= key) lo = mid + 1; else hi = mid;
  }
  return lo == 0 ? 0 : lo - 1;
}

Status Validate(const CachedBlock& b, uint32_t block_size) {
  uint32_t level = Level(b), n = Count(b);
  auto fail = [&](const std::string& why) {
    return Status::Corruption(std::string(BlockTypeName(b.type)) + " at physical block " +
                              std::to_string(b.loc) + ": " + why);
  };
  const bool leaf_type = b.type == BlockType::kLeaf || b.type == BlockType::kEntryLeaf ||
                         b.type == BlockType::kNameLeaf;
  if (leaf_type != (level == 0)) return fail("level does not match type");
  if (level > 32) return fail("level " + std::to_string(level) + " too deep");
  uint32_t cap = level == 0 ? LeafCapacity(block_size) : InternalCapacity(block_size);
  if (n > cap) return fail(std::to_string(n) + " entries exceed capacity");
  if (level > 0 && n == 0) return fail("empty internal node");
  return Status::Ok();
}

}  // namespace node

using namespace node;

BTree::BTree(TransactionManager* tm, uint32_t block_size, const TreeKind& kind)
    : tm_(tm), kind_(kind), leaf_cap_(LeafCapacity(block_size)),
      int_cap_(InternalCapacity(block_size)) {}

namespace {
// A node's level must be its parent's minus one (expected < 0: a root), so
// a corrupt pointer cannot make a traversal loop or recurse without bound.
Status CheckLevel(const CachedBlock& b, int expected) {
  if (expected >= 0 && Level(b) != static_cast<uint32_t>(expected)) {
    return Status::Corruption(std::string(BlockTypeName(b.type)) + " at physical block " +
                              std::to_string(b.loc) + ": level " + std::to_string(Level(b)) +
                              ", expected " + std::to_string(expected));
  }
  return Status::Ok();
}
Result<BlockRef> ReadValid(TransactionManager* tm, const TreeKind& kind, uint64_t loc,
                           int expected_level) {
  ASSIGN_OR_RETURN(BlockRef b, tm->ReadNode(loc, kind));
  RETURN_IF_ERROR(Validate(*b, tm->cache().block_size()));
  RETURN_IF_ERROR(CheckLevel(*b, expected_level));
  return b;
}
}  // namespace

Result<std::optional<Mapping>> BTree::Lookup(uint64_t root, uint64_t key) {
  uint64_t loc = root;
  int level = -1;
  while (loc != 0) {
    ASSIGN_OR_RETURN(BlockRef b, ReadValid(tm_, kind_, loc, level));
    level = static_cast<int>(Level(*b)) - 1;
    uint32_t n = Count(*b);
    if (Level(*b) == 0) {
      uint32_t i = LowerBound(*b, key);
      if (i < n && Key(*b, i) == key) return std::optional<Mapping>(Value(*b, i));
      return std::optional<Mapping>();
    }
    if (key < Key(*b, 0)) return std::optional<Mapping>();
    loc = Child(*b, ChildSlot(*b, key));
  }
  return std::optional<Mapping>();
}

Status BTree::IncChildren(const CachedBlock& b) {
  uint32_t n = Count(b);
  if (Level(b) == 0 && !kind_.values_are_blocks) return Status::Ok();
  for (uint32_t i = 0; i < n; ++i) {
    RETURN_IF_ERROR(tm_->sm().Inc(Level(b) == 0 ? Value(b, i).phys : Child(b, i)));
  }
  return Status::Ok();
}

Status BTree::InsertRec(uint64_t loc, int level, uint64_t hi, uint64_t key, const Mapping& v,
                        bool* added, InsertOut* out) {
  // Validate before shadowing, so a bad node is never copied.
  RETURN_IF_ERROR(ReadValid(tm_, kind_, loc, level).status());
  bool inc = false;
  ASSIGN_OR_RETURN(BlockRef b, tm_->ShadowNode(loc, kind_, &inc));
  if (inc) RETURN_IF_ERROR(IncChildren(*b));
  out->loc = b->loc;
  uint32_t n = Count(*b);
  if (Level(*b) == 0) {
    uint32_t pos = LowerBound(*b, key);
    if (pos < n && Key(*b, pos) == key) {
      Mapping old = Value(*b, pos);
      if (kind_.values_are_blocks && old.phys != v.phys) {
        RETURN_IF_ERROR(tm_->sm().Dec(old.phys).status());
      }
      SetLeafEntry(*b, pos, key, v);
      *added = false;
      // The leaf is private now: the next keys of a rewrite take the fast
      // path in Insert (without this, every rewritten block walked the tree).
      out->leaf = b->loc;
      out->leaf_hi = hi;
      return Status::Ok();
    }
    *added = true;
    CachedBlock* target = b.get();
    if (n == leaf_cap_) {
      ASSIGN_OR_RETURN(BlockRef r, tm_->New(kind_.leaf));
      SetLevel(*r, 0);
      MoveTail(*b, n / 2, *r);
      out->split = true;
      out->split_key = Key(*r, 0);
      out->right = r->loc;
      if (key >= out->split_key) target = r.get();
      pos = LowerBound(*target, key);
    }
    OpenGap(*target, pos);
    SetLeafEntry(*target, pos, key, v);
    if (!out->split) {
      out->leaf = b->loc;
      out->leaf_hi = hi;
    }
    return Status::Ok();
  }
  uint32_t i = ChildSlot(*b, key);
  if (key < Key(*b, 0)) SetKey(*b, 0, key);
  InsertOut co;
  uint64_t child_hi = i + 1 < n ? Key(*b, i + 1) : hi;
  RETURN_IF_ERROR(
      InsertRec(Child(*b, i), static_cast<int>(Level(*b)) - 1, child_hi, key, v, added, &co));
  SetChild(*b, i, co.loc);
  if (!co.split) {
    out->leaf = co.leaf;
    out->leaf_hi = co.leaf_hi;
    return Status::Ok();
  }
  CachedBlock* target = b.get();
  uint32_t pos = i + 1;
  if (n == int_cap_) {
    ASSIGN_OR_RETURN(BlockRef r, tm_->New(kind_.internal));
    SetLevel(*r, Level(*b));
    MoveTail(*b, n / 2, *r);
    out->split = true;
    out->split_key = Key(*r, 0);
    out->right = r->loc;
    if (pos > n / 2) {
      target = r.get();
      pos -= n / 2;
    }
  }
  OpenGap(*target, pos);
  SetInternalEntry(*target, pos, co.split_key, co.right);
  return Status::Ok();
}

Status BTree::Insert(uint64_t* root, uint64_t key, Mapping value, bool* added) {
  // Fast path for writes near the last one: the leaf the last insert into
  // this tree landed in takes the key directly if that leaf (and so its
  // whole path) is still private to this transaction and the key falls in
  // [its first key, its upper bound), a range inside the leaf's own: an
  // update in place, or an insert while it has room. (An ext4 populate
  // writes data ascending below keys mkfs already mapped, so appending at
  // the end alone missed almost always.)
  if (hint_leaf_ != 0 && hint_root_ == *root && *root != 0 && tm_->sm().IsNew(hint_leaf_)) {
    ASSIGN_OR_RETURN(uint32_t count, tm_->sm().Get(hint_leaf_));
    if (count == 1) {
      ASSIGN_OR_RETURN(BlockRef b, tm_->ReadNode(hint_leaf_, kind_));
      const uint32_t n = Count(*b);
      if (Level(*b) == 0 && n > 0 && key >= Key(*b, 0) && key < hint_hi_) {
        const uint32_t pos = LowerBound(*b, key);
        if (pos < n && Key(*b, pos) == key) {
          const Mapping old = Value(*b, pos);
          if (kind_.values_are_blocks && old.phys != value.phys) {
            RETURN_IF_ERROR(tm_->sm().Dec(old.phys).status());
          }
          SetLeafEntry(*b, pos, key, value);
          b->MarkDirty();
          *added = false;
          return Status::Ok();
        }
        if (n < leaf_cap_) {
          OpenGap(*b, pos);
          SetLeafEntry(*b, pos, key, value);
          b->MarkDirty();
          *added = true;
          return Status::Ok();
        }
      }
    }
  }
  hint_leaf_ = 0;
  if (*root == 0) {
    ASSIGN_OR_RETURN(BlockRef b, tm_->New(kind_.leaf));
    SetLevel(*b, 0);
    SetCount(*b, 1);
    SetLeafEntry(*b, 0, key, value);
    *root = b->loc;
    *added = true;
    return Status::Ok();
  }
  InsertOut o;
  RETURN_IF_ERROR(InsertRec(*root, -1, UINT64_MAX, key, value, added, &o));
  if (!o.split) {
    *root = o.loc;
    hint_root_ = o.loc;
    hint_leaf_ = o.leaf;
    hint_hi_ = o.leaf_hi;
    return Status::Ok();
  }
  ASSIGN_OR_RETURN(BlockRef left, tm_->ReadNode(o.loc, kind_));
  ASSIGN_OR_RETURN(BlockRef nr, tm_->New(kind_.internal));
  SetLevel(*nr, Level(*left) + 1);
  SetCount(*nr, 2);
  SetInternalEntry(*nr, 0, Key(*left, 0), o.loc);
  SetInternalEntry(*nr, 1, o.split_key, o.right);
  *root = nr->loc;
  return Status::Ok();
}

Status BTree::Spread(CachedBlock& b, const uint8_t* src, uint32_t count, RunOut* out) {
  const uint32_t level = Level(b), es = EntrySize(b);
  const uint32_t cap = level == 0 ? leaf_cap_ : int_cap_;
  const uint32_t pieces = (count + cap - 1) / cap;
  // Equal shares (the first ones one entry more), so no piece is left
  // nearly empty and the next inserts near the run find room.
  const uint32_t share = count / pieces, extra = count % pieces;
  uint32_t at = 0;
  for (uint32_t p = 0; p < pieces; ++p) {
    const uint32_t c = share + (p < extra ? 1 : 0);
    CachedBlock* dst = &b;
    BlockRef made;
    if (p > 0) {
      ASSIGN_OR_RETURN(made, tm_->New(b.type));
      SetLevel(*made, level);
      dst = made.get();
      out->right.emplace_back(LoadLE64(src + size_t(at) * es), made->loc);
    }
    std::memcpy(At(*dst, 0), src + size_t(at) * es, size_t(c) * es);
    SetCount(*dst, c);
    at += c;
  }
  return Status::Ok();
}

Status BTree::InsertRunRec(uint64_t loc, int level, uint64_t first, std::span<const Mapping> v,
                           uint64_t* added, RunOut* out) {
  // Validate before shadowing, so a bad node is never copied.
  RETURN_IF_ERROR(ReadValid(tm_, kind_, loc, level).status());
  bool inc = false;
  ASSIGN_OR_RETURN(BlockRef b, tm_->ShadowNode(loc, kind_, &inc));
  if (inc) RETURN_IF_ERROR(IncChildren(*b));
  out->loc = b->loc;
  const uint32_t n = Count(*b);
  const uint64_t m = v.size();
  if (Level(*b) == 0) {
    const uint32_t pos = LowerBound(*b, first);
    // A rewrite: every key of the run is in the leaf already, in a row.
    bool all_there = pos + m <= n;
    for (uint32_t j = 0; all_there && j < m; ++j) all_there = Key(*b, pos + j) == first + j;
    if (all_there) {
      for (uint32_t j = 0; j < m; ++j) {
        const Mapping old = Value(*b, pos + j);
        if (kind_.values_are_blocks && old.phys != v[j].phys) {
          RETURN_IF_ERROR(tm_->sm().Dec(old.phys).status());
        }
        SetLeafEntry(*b, pos + j, first + j, v[j]);
      }
      return Status::Ok();
    }
    // Otherwise merge the leaf's entries with the run's.
    merge_.resize((size_t(n) + m) * 24);
    uint8_t* dst = merge_.data();
    const uint8_t* src = At(*b, 0);
    uint32_t i = 0, count = 0;
    for (uint64_t j = 0; j < m; ++j) {
      const uint64_t key = first + j;
      for (; i < n && Key(*b, i) < key; ++i, ++count, dst += 24) {
        std::memcpy(dst, src + size_t(i) * 24, 24);
      }
      if (i < n && Key(*b, i) == key) {
        const Mapping old = Value(*b, i);
        if (kind_.values_are_blocks && old.phys != v[j].phys) {
          RETURN_IF_ERROR(tm_->sm().Dec(old.phys).status());
        }
        ++i;
      } else {
        ++*added;
      }
      PutLE64(dst, key);
      PutLE64(dst + 8, v[j].phys);
      PutLE64(dst + 16, v[j].csum);
      dst += 24;
      ++count;
    }
    std::memcpy(dst, src + size_t(i) * 24, size_t(n - i) * 24);
    count += n - i;
    return Spread(*b, merge_.data(), count, out);
  }
  if (first < Key(*b, 0)) SetKey(*b, 0, first);
  const int child_level = static_cast<int>(Level(*b)) - 1;
  // The children the run reaches, with what they split off (rare).
  std::vector<std::pair<uint32_t, RunOut>> grown;
  uint64_t done = 0;
  for (uint32_t i = ChildSlot(*b, first); done < m; ++i) {
    const uint64_t key = first + done;
    // Keys below the next child's first key go to this child (all the
    // rest to the last child).
    uint64_t take = m - done;
    if (i + 1 < n) {
      const uint64_t next = Key(*b, i + 1);
      take = next > key ? std::min(take, next - key) : 0;
    }
    if (take == 0) continue;
    RunOut co;
    RETURN_IF_ERROR(
        InsertRunRec(Child(*b, i), child_level, key, v.subspan(done, take), added, &co));
    SetChild(*b, i, co.loc);
    if (!co.right.empty()) grown.emplace_back(i, std::move(co));
    done += take;
  }
  if (grown.empty()) return Status::Ok();
  // Rebuild the entries with the split-off children after their left
  // neighbours, then spread them over as many nodes as they need.
  size_t total = n;
  for (const auto& g : grown) total += g.second.right.size();
  std::vector<uint8_t> entries(total * 16);
  uint8_t* dst = entries.data();
  uint32_t from = 0;
  for (const auto& g : grown) {
    std::memcpy(dst, At(*b, from), size_t(g.first + 1 - from) * 16);
    dst += size_t(g.first + 1 - from) * 16;
    from = g.first + 1;
    for (const auto& [key, child] : g.second.right) {
      PutLE64(dst, key);
      PutLE64(dst + 8, child);
      dst += 16;
    }
  }
  std::memcpy(dst, At(*b, from), size_t(n - from) * 16);
  return Spread(*b, entries.data(), static_cast<uint32_t>(total), out);
}

Status BTree::InsertRun(uint64_t* root, uint64_t first, std::span<const Mapping> values,
                        uint64_t* added) {
  *added = 0;
  // The run may split the hinted leaf, so the hint's bound would lie.
  hint_leaf_ = 0;
  if (values.empty()) return Status::Ok();
  if (*root == 0) {
    ASSIGN_OR_RETURN(BlockRef b, tm_->New(kind_.leaf));
    SetLevel(*b, 0);
    *root = b->loc;
  }
  RunOut o;
  RETURN_IF_ERROR(InsertRunRec(*root, -1, first, values, added, &o));
  *root = o.loc;
  if (o.right.empty()) return Status::Ok();
  // The root split: new levels above it until one node holds them all.
  ASSIGN_OR_RETURN(BlockRef left, tm_->ReadNode(o.loc, kind_));
  uint32_t level = Level(*left) + 1;
  std::vector<std::pair<uint64_t, uint64_t>> nodes;
  nodes.emplace_back(Key(*left, 0), o.loc);
  nodes.insert(nodes.end(), o.right.begin(), o.right.end());
  while (nodes.size() > 1) {
    std::vector<uint8_t> entries(nodes.size() * 16);
    for (size_t i = 0; i < nodes.size(); ++i) {
      PutLE64(&entries[i * 16], nodes[i].first);
      PutLE64(&entries[i * 16 + 8], nodes[i].second);
    }
    ASSIGN_OR_RETURN(BlockRef nr, tm_->New(kind_.internal));
    SetLevel(*nr, level++);
    RunOut up;
    RETURN_IF_ERROR(Spread(*nr, entries.data(), static_cast<uint32_t>(nodes.size()), &up));
    std::vector<std::pair<uint64_t, uint64_t>> next;
    next.emplace_back(nodes.front().first, nr->loc);
    next.insert(next.end(), up.right.begin(), up.right.end());
    nodes = std::move(next);
  }
  *root = nodes.front().second;
  return Status::Ok();
}

Status BTree::RemoveRec(uint64_t loc, int level, uint64_t key, uint64_t* new_loc, bool* empty) {
  RETURN_IF_ERROR(ReadValid(tm_, kind_, loc, level).status());
  bool inc = false;
  ASSIGN_OR_RETURN(BlockRef b, tm_->ShadowNode(loc, kind_, &inc));
  if (inc) RETURN_IF_ERROR(IncChildren(*b));
  *new_loc = b->loc;
  if (Level(*b) == 0) {
    uint32_t pos = LowerBound(*b, key);
    if (pos >= Count(*b) || Key(*b, pos) != key) {
      return Status::Internal("btree remove: key vanished during descent");
    }
    if (kind_.values_are_blocks) RETURN_IF_ERROR(tm_->sm().Dec(Value(*b, pos).phys).status());
    Erase(*b, pos);
  } else {
    uint32_t i = ChildSlot(*b, key);
    uint64_t cl = 0;
    bool child_empty = false;
    RETURN_IF_ERROR(
        RemoveRec(Child(*b, i), static_cast<int>(Level(*b)) - 1, key, &cl, &child_empty));
    if (child_empty) {
      RETURN_IF_ERROR(tm_->sm().Dec(cl).status());
      Erase(*b, i);
    } else {
      SetChild(*b, i, cl);
    }
  }
  *empty = Count(*b) == 0;
  return Status::Ok();
}

Status BTree::Remove(uint64_t* root, uint64_t key, bool* removed) {
  hint_leaf_ = 0;
  ASSIGN_OR_RETURN(auto found, Lookup(*root, key));
  *removed = found.has_value();
  if (!found) return Status::Ok();
  uint64_t nl = 0;
  bool empty = false;
  RETURN_IF_ERROR(RemoveRec(*root, -1, key, &nl, &empty));
  if (empty) {
    RETURN_IF_ERROR(tm_->sm().Dec(nl).status());
    nl = 0;
  }
  *root = nl;
  return Status::Ok();
}

Status BTree::ForEachRec(uint64_t loc, int level, uint64_t lo, uint64_t hi, Walk* w,
                         const std::function<bool(uint64_t, const Mapping&)>& fn) {
  // A tree holds each node once, so a walk visiting more nodes than the
  // pool has blocks is going round a damaged node's repeated pointers.
  if (w->visits++ > tm_->sm().nr_blocks()) {
    return Status::Corruption("damaged tree near physical block " + std::to_string(loc) +
                              ": a node is reached more than once under one root");
  }
  ASSIGN_OR_RETURN(BlockRef b, ReadValid(tm_, kind_, loc, level));
  uint32_t n = Count(*b);
  if (Level(*b) == 0) {
    for (uint32_t i = LowerBound(*b, lo); i < n && !w->stop; ++i) {
      uint64_t k = Key(*b, i);
      if (k >= hi) break;
      // Callers index buffers by key: a damaged tree must not hand out a
      // key below lo or out of order (a loop over windows would also
      // never end).
      if (k < lo || (w->emitted && k <= w->prev)) {
        return Status::Corruption(std::string(BlockTypeName(b->type)) + " at physical block " +
                                  std::to_string(b->loc) + ": keys out of order");
      }
      w->emitted = true;
      w->prev = k;
      if (!fn(k, Value(*b, i))) w->stop = true;
    }
    return Status::Ok();
  }
  for (uint32_t i = ChildSlot(*b, lo); i < n && !w->stop; ++i) {
    if (Key(*b, i) >= hi) break;
    if (i + 1 < n && Key(*b, i + 1) <= lo) continue;
    RETURN_IF_ERROR(ForEachRec(Child(*b, i), static_cast<int>(Level(*b)) - 1, lo, hi, w, fn));
  }
  return Status::Ok();
}

Status BTree::ForEach(uint64_t root, uint64_t lo, uint64_t hi,
                      const std::function<bool(uint64_t, const Mapping&)>& fn) {
  if (root == 0 || lo >= hi) return Status::Ok();
  Walk w;
  return ForEachRec(root, -1, lo, hi, &w, fn);
}

Status BTree::IncRoot(uint64_t root) {
  hint_leaf_ = 0;
  if (root == 0) return Status::Ok();
  return tm_->sm().Inc(root);
}

Status BTree::DecRoot(uint64_t root) {
  hint_leaf_ = 0;
  return DecRec(root, -1);
}

Status BTree::DecRec(uint64_t root, int level) {
  if (root == 0) return Status::Ok();
  ASSIGN_OR_RETURN(BlockRef b, ReadValid(tm_, kind_, root, level));
  ASSIGN_OR_RETURN(uint32_t left, tm_->sm().Dec(root));
  if (left != 0) return Status::Ok();
  uint32_t n = Count(*b);
  for (uint32_t i = 0; i < n; ++i) {
    if (Level(*b) == 0) {
      if (kind_.values_are_blocks) RETURN_IF_ERROR(tm_->sm().Dec(Value(*b, i).phys).status());
    } else {
      RETURN_IF_ERROR(DecRec(Child(*b, i), static_cast<int>(Level(*b)) - 1));
    }
  }
  return Status::Ok();
}

Status BTree::CountRec(uint64_t loc, int level, uint64_t lo, uint64_t hi, uint64_t* nodes,
                       uint32_t* depth) {
  // As in ForEachRec: more nodes than the pool has blocks means repeats.
  if (*nodes > tm_->sm().nr_blocks()) {
    return Status::Corruption("damaged tree near physical block " + std::to_string(loc) +
                              ": a node is reached more than once under one root");
  }
  ASSIGN_OR_RETURN(BlockRef b, ReadValid(tm_, kind_, loc, level));
  ++*nodes;
  *depth = std::max(*depth, Level(*b) + 1);
  if (Level(*b) == 0) return Status::Ok();
  uint32_t n = Count(*b);
  for (uint32_t i = ChildSlot(*b, lo); i < n; ++i) {
    if (i > ChildSlot(*b, lo) && Key(*b, i) >= hi) break;
    if (i + 1 < n && Key(*b, i + 1) <= lo) continue;
    RETURN_IF_ERROR(CountRec(Child(*b, i), static_cast<int>(Level(*b)) - 1, lo, hi, nodes, depth));
  }
  return Status::Ok();
}

Result<uint64_t> BTree::RangeNodes(uint64_t root, uint64_t lo, uint64_t hi) {
  uint64_t nodes = 0;
  uint32_t depth = 1;
  if (root != 0 && lo < hi) RETURN_IF_ERROR(CountRec(root, -1, lo, hi, &nodes, &depth));
  return nodes;
}

Result<uint64_t> BTree::CostBound(uint64_t root, uint64_t lo, uint64_t hi, uint64_t n) {
  uint64_t nodes = 0;
  uint32_t depth = 1;
  if (root != 0 && lo < hi) RETURN_IF_ERROR(CountRec(root, -1, lo, hi, &nodes, &depth));
  return 2 * nodes + (2 * n / leaf_cap_ + 2) * (uint64_t(depth) + 1) + 2;
}

}  // namespace stack::pool

// ---------------------------------------------------------------- paired walk (Diff)

namespace stack::pool {

namespace {
// The key range child i of internal node b covers: [key[i], key[i+1]), the
// first child from 0 (no key under it is below key[0]).
uint64_t ChildLo(const CachedBlock& b, uint32_t i) { return i == 0 ? 0 : Key(b, i); }
uint64_t ChildHi(const CachedBlock& b, uint32_t i) {
  return i + 1 < Count(b) ? Key(b, i + 1) : UINT64_MAX;
}
Status OutOfOrder(const CachedBlock& b) {
  return Status::Corruption(std::string(BlockTypeName(b.type)) + " at physical block " +
                            std::to_string(b.loc) + ": keys out of order");
}
}  // namespace

Status BTree::DiffLoad(DiffSide* s, DiffWalk* w) {
  if (s->node) return Status::Ok();
  // A damaged node repeating pointers could make the walk go round.
  if (w->stats->nodes_visited++ > w->limit) {
    return Status::Corruption("damaged tree near physical block " + std::to_string(s->loc) +
                              ": a node is reached more than once under one root");
  }
  ASSIGN_OR_RETURN(s->node, ReadValid(tm_, kind_, s->loc, s->level));
  return Status::Ok();
}

Status BTree::DiffOneSide(DiffSide s, bool is_from, uint64_t lo, uint64_t hi, DiffWalk* w) {
  RETURN_IF_ERROR(DiffLoad(&s, w));
  const CachedBlock& b = *s.node;
  const uint32_t n = Count(b);
  if (Level(b) == 0) {
    bool any = false;
    uint64_t prev = 0;
    for (uint32_t i = LowerBound(b, lo); i < n; ++i) {
      const uint64_t k = Key(b, i);
      if (k >= hi) break;
      if (any && k <= prev) return OutOfOrder(b);
      any = true;
      prev = k;
      const Mapping m = Value(b, i);
      RETURN_IF_ERROR((*w->fn)(k, is_from ? &m : nullptr, is_from ? nullptr : &m));
    }
    return Status::Ok();
  }
  const int child_level = static_cast<int>(Level(b)) - 1;
  for (uint32_t i = ChildSlot(b, lo); i < n; ++i) {
    const uint64_t clo = std::max(lo, ChildLo(b, i)), chi = std::min(hi, ChildHi(b, i));
    if (clo >= hi) break;
    if (clo >= chi) continue;
    RETURN_IF_ERROR(DiffOneSide(DiffSide{Child(b, i), child_level, nullptr}, is_from, clo, chi, w));
  }
  return Status::Ok();
}

Status BTree::DiffRec(DiffSide a, DiffSide b, uint64_t lo, uint64_t hi, DiffWalk* w) {
  if (lo >= hi) return Status::Ok();
  if (a.loc == b.loc) {
    // One node: the same mappings on both sides, whatever lies below.
    if (a.loc != 0) ++w->stats->shared_nodes;
    return Status::Ok();
  }
  if (a.loc == 0) return DiffOneSide(std::move(b), false, lo, hi, w);
  if (b.loc == 0) return DiffOneSide(std::move(a), true, lo, hi, w);
  RETURN_IF_ERROR(DiffLoad(&a, w));
  RETURN_IF_ERROR(DiffLoad(&b, w));
  const CachedBlock& na = *a.node;
  const CachedBlock& nb = *b.node;
  const uint32_t la = Level(na), lb = Level(nb);
  if (la == 0 && lb == 0) {
    // Two leaves: merge their keys within [lo, hi).
    const uint32_t ca = Count(na), cb = Count(nb);
    uint32_t i = LowerBound(na, lo), j = LowerBound(nb, lo);
    bool any_a = false, any_b = false;
    uint64_t prev_a = 0, prev_b = 0;
    for (;;) {
      const bool has_a = i < ca && Key(na, i) < hi;
      const bool has_b = j < cb && Key(nb, j) < hi;
      if (!has_a && !has_b) break;
      const uint64_t ka = has_a ? Key(na, i) : UINT64_MAX;
      const uint64_t kb = has_b ? Key(nb, j) : UINT64_MAX;
      if (has_a && any_a && ka <= prev_a) return OutOfOrder(na);
      if (has_b && any_b && kb <= prev_b) return OutOfOrder(nb);
      if (ka == kb) {
        const Mapping ma = Value(na, i), mb = Value(nb, j);
        if (ma.phys == mb.phys) {
          ++w->stats->shared_blocks;
        } else {
          RETURN_IF_ERROR((*w->fn)(ka, &ma, &mb));
        }
        any_a = any_b = true;
        prev_a = ka;
        prev_b = kb;
        ++i;
        ++j;
      } else if (ka < kb) {
        const Mapping ma = Value(na, i);
        RETURN_IF_ERROR((*w->fn)(ka, &ma, nullptr));
        any_a = true;
        prev_a = ka;
        ++i;
      } else {
        const Mapping mb = Value(nb, j);
        RETURN_IF_ERROR((*w->fn)(kb, nullptr, &mb));
        any_b = true;
        prev_b = kb;
        ++j;
      }
    }
    return Status::Ok();
  }
  if (la != lb) {
    // Different heights (one tree grew or shrank a level): descend the
    // taller side alone, pairing each child with the other side's node
    // (already read, so it is not read again).
    const bool a_taller = la > lb;
    const CachedBlock& t = a_taller ? na : nb;
    const int child_level = static_cast<int>(Level(t)) - 1;
    const uint32_t n = Count(t);
    for (uint32_t i = ChildSlot(t, lo); i < n; ++i) {
      const uint64_t clo = std::max(lo, ChildLo(t, i)), chi = std::min(hi, ChildHi(t, i));
      if (clo >= hi) break;
      if (clo >= chi) continue;
      DiffSide c{Child(t, i), child_level, nullptr};
      RETURN_IF_ERROR(a_taller ? DiffRec(std::move(c), b, clo, chi, w)
                               : DiffRec(a, std::move(c), clo, chi, w));
    }
    return Status::Ok();
  }
  // Two internal nodes of one level: pair their children over the
  // intervals their key boundaries cut [lo, hi) into. Where both trees have
  // the same shape each child meets its twin once (and shared ones are
  // skipped unread); a child that spans several intervals of the other
  // side (a split on one side) is read once per interval.
  const int child_level = static_cast<int>(la) - 1;
  const uint32_t ca = Count(na), cb = Count(nb);
  uint32_t i = ChildSlot(na, lo), j = ChildSlot(nb, lo);
  uint64_t start = lo;
  while (start < hi && i < ca && j < cb) {
    const uint64_t end = std::min({hi, ChildHi(na, i), ChildHi(nb, j)});
    if (end <= start) return OutOfOrder(ChildHi(na, i) <= start ? na : nb);
    DiffSide sa{Child(na, i), child_level, nullptr};
    DiffSide sb{Child(nb, j), child_level, nullptr};
    RETURN_IF_ERROR(DiffRec(std::move(sa), std::move(sb), start, end, w));
    if (ChildHi(na, i) == end) ++i;
    if (ChildHi(nb, j) == end) ++j;
    start = end;
  }
  return Status::Ok();
}

Status BTree::Diff(uint64_t from_root, uint64_t to_root, uint64_t lo, uint64_t hi,
                   const DiffFn& fn, TreeDiffStats* stats) {
  // Sound trees: each node of either tree is read at most once per key
  // boundary of the other tree at its level, a small multiple of the
  // nodes they hold; more means a damaged node repeats pointers.
  DiffWalk w{stats, 4 * tm_->sm().nr_blocks() + 64, &fn};
  return DiffRec(DiffSide{from_root, -1, nullptr}, DiffSide{to_root, -1, nullptr}, lo, hi, &w);
}

}  // namespace stack::pool

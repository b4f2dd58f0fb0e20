// BTree::InsertRun against BTree::Insert of each key in turn: two
// transaction managers run the same operations, one inserting runs key by
// key and the other in bulk; their mappings and data-block reference
// counts must agree, and the bulk side's tree must be sound (shape, node
// reference counts, no leaked block) and stay within CostBound.
#include <algorithm>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <vector>

#include <catch2/catch.hpp>

#include "block/endian.h"
#include "block/mem_device.h"
#include "btree.h"
#include "format.h"
#include "pool/store.h"
#include "test_util.h"
#include "transaction.h"

namespace stack::pool {
namespace {

using ::stack::testing::kBs;
constexpr uint64_t kPoolBlocks = 1 << 16;
constexpr uint64_t kDataBlocks = 50000;

// One pool-less transaction manager over memory, with kDataBlocks data
// blocks allocated first (so both sides number them alike).
struct Side {
  std::unique_ptr<Store> store;
  std::unique_ptr<TransactionManager> tm;
  std::unique_ptr<BTree> tree;
  Superblock sb;
  std::vector<uint64_t> data;  // allocated data blocks, handed out in order
  size_t next_data = 0;

  Side() {
    auto s = std::make_shared<MemStorage>();
    s->block_size = kBs;
    s->block_count = kPoolBlocks;
    store = MakeDeviceStore(std::make_unique<MemDevice>(s));
    tm = std::make_unique<TransactionManager>(store.get(), kBs, 1 << 14);
    tree = std::make_unique<BTree>(tm.get(), kBs, kVolumeTree);
    sb.block_size = kBs;
    sb.nr_blocks = kPoolBlocks;
    sb.max_blocks = kPoolBlocks;
    tm->Begin(sb);
    for (uint64_t b = 0; b < kSuperCopies; ++b) REQUIRE_OK(tm->sm().Claim(b));
    REQUIRE_OK(tm->sm().AllocMany(kDataBlocks, &data));
  }
  uint64_t Fresh() {
    REQUIRE(next_data < data.size());
    return data[next_data++];
  }
  void Commit() {
    Superblock next = sb;
    next.generation = sb.generation + 1;
    REQUIRE_OK(tm->Commit(&next));
    sb = next;
  }
  std::map<uint64_t, std::pair<uint64_t, uint64_t>> Dump(uint64_t root) {
    std::map<uint64_t, std::pair<uint64_t, uint64_t>> out;
    REQUIRE_OK(tree->ForEach(root, 0, UINT64_MAX, [&](uint64_t k, const Mapping& m) {
      out[k] = {m.phys, m.csum};
      return true;
    }));
    return out;
  }
};

// Walks a node: checks its shape and key bounds [lo, hi), counts one
// reference per child and per leaf entry's data block (a node reached
// again through another parent only gains a reference).
void Walk(Side& s, uint64_t loc, int level, uint64_t lo, uint64_t hi,
          std::map<uint64_t, uint64_t>* node_refs, std::map<uint64_t, uint64_t>* data_refs) {
  if ((*node_refs)[loc]++ > 0) return;
  auto b = s.tm->ReadNode(loc, kVolumeTree);
  REQUIRE_OK(b);
  const CachedBlock& n = **b;
  REQUIRE_OK(node::Validate(n, kBs));
  if (level >= 0) REQUIRE(node::Level(n) == uint32_t(level));
  const uint32_t count = node::Count(n);
  if (node::Level(n) > 0) REQUIRE(count > 0);
  for (uint32_t i = 0; i < count; ++i) {
    const uint64_t k = node::Key(n, i);
    REQUIRE(k < hi);
    if (i > 0) REQUIRE(k > node::Key(n, i - 1));
    if (node::Level(n) == 0) {
      REQUIRE(k >= lo);
      ++(*data_refs)[node::Value(n, i).phys];
    } else {
      // key[0] may lie below lo (a lower bound of its child only).
      if (i > 0) REQUIRE(k >= lo);
      const uint64_t child_hi = i + 1 < count ? node::Key(n, i + 1) : hi;
      Walk(s, node::Child(n, i), int(node::Level(n)) - 1, i == 0 ? lo : k, child_hi, node_refs,
           data_refs);
    }
  }
}

// Every block's reference count is what the trees hold, and nothing else
// is in use.
void RequireSound(Side& s, const std::vector<uint64_t>& roots) {
  std::map<uint64_t, uint64_t> node_refs, data_refs;
  for (uint64_t r : roots) {
    if (r != 0) Walk(s, r, -1, 0, UINT64_MAX, &node_refs, &data_refs);
  }
  // Data blocks not yet handed out hold their allocation's reference.
  for (size_t i = s.next_data; i < s.data.size(); ++i) ++data_refs[s.data[i]];
  uint64_t used = kSuperCopies;
  // The committed space map's own blocks.
  for (uint64_t il : s.tm->sm().index_locs()) {
    if (il == 0) continue;
    ++used;
    auto ib = s.tm->cache().Read(il, BlockType::kSmIndex);
    REQUIRE_OK(ib);
    for (uint64_t i = 0; i < IndexEntriesPerBlock(kBs); ++i) {
      if (GetLE64((*ib)->payload() + 8 * i) != 0) ++used;
    }
  }
  for (const auto& [b, c] : node_refs) {
    auto got = s.tm->sm().Get(b);
    REQUIRE_OK(got);
    INFO("node " << b);
    REQUIRE(*got == c);
    ++used;
  }
  for (const auto& [b, c] : data_refs) {
    auto got = s.tm->sm().Get(b);
    REQUIRE_OK(got);
    INFO("data block " << b);
    REQUIRE(*got == c);
    ++used;
  }
  REQUIRE(s.tm->sm().used_blocks() == used);
}

struct Run {
  uint64_t first;
  std::vector<Mapping> values;
};

void RandomTest(uint64_t seed, bool commits, bool snapshots) {
  std::mt19937_64 rng(seed);
  Side a, b;  // a: Insert per key; b: InsertRun
  REQUIRE(a.data == b.data);
  auto pick = [&](uint64_t n) { return rng() % n; };
  const uint64_t keyspace = 200 + pick(6000);
  std::vector<uint64_t> ra{0}, rb{0};  // roots; [0] is written, others are snapshots
  // A random base tree, built alike on both sides.
  const uint64_t base = pick(keyspace);
  for (uint64_t i = 0; i < base; ++i) {
    const uint64_t key = pick(keyspace);
    const Mapping m{0, key * 7};
    bool added_a = false, added_b = false;
    Mapping ma = m, mb = m;
    ma.phys = a.Fresh();
    mb.phys = b.Fresh();
    REQUIRE_OK(a.tree->Insert(&ra[0], key, ma, &added_a));
    REQUIRE_OK(b.tree->Insert(&rb[0], key, mb, &added_b));
    REQUIRE(added_a == added_b);
  }
  const int steps = 40;
  for (int step = 0; step < steps; ++step) {
    if (snapshots && pick(6) == 0) {
      REQUIRE_OK(a.tree->IncRoot(ra[0]));
      REQUIRE_OK(b.tree->IncRoot(rb[0]));
      ra.push_back(ra[0]);
      rb.push_back(rb[0]);
    }
    if (commits && pick(5) == 0) {
      a.Commit();
      b.Commit();
    }
    // A run: some keys keep their data block (an overwrite in place),
    // the others get a fresh one.
    const uint64_t len = 1 + (pick(3) == 0 ? pick(400) : pick(80));
    const uint64_t first = pick(keyspace + 100);
    const auto before = a.Dump(ra[0]);
    const auto before_b = b.Dump(rb[0]);
    std::vector<Mapping> va, vb;
    const bool in_place = pick(3) == 0;
    for (uint64_t k = first; k < first + len; ++k) {
      auto it = before.find(k);
      if (in_place && it != before.end()) {
        va.push_back(Mapping{it->second.first, k + 1});
        vb.push_back(Mapping{before_b.at(k).first, k + 1});
      } else {
        va.push_back(Mapping{a.Fresh(), k + 2});
        vb.push_back(Mapping{b.Fresh(), k + 2});
      }
    }
    uint64_t added_a = 0;
    for (uint64_t i = 0; i < len; ++i) {
      bool added = false;
      REQUIRE_OK(a.tree->Insert(&ra[0], first + i, va[i], &added));
      added_a += added;
    }
    auto bound = b.tree->CostBound(rb[0], first, first + len, len);
    REQUIRE_OK(bound);
    const uint64_t avail = b.tm->sm().available();
    uint64_t added_b = 0;
    REQUIRE_OK(b.tree->InsertRun(&rb[0], first, vb, &added_b));
    INFO("seed " << seed << " step " << step << " run " << first << "+" << len);
    REQUIRE(avail - b.tm->sm().available() <= *bound);
    REQUIRE(added_a == added_b);
    // A single insert after the run (the append hint must not go stale).
    if (pick(2) == 0) {
      const uint64_t key = first + pick(len + 2);
      bool x = false, y = false;
      REQUIRE_OK(a.tree->Insert(&ra[0], key, Mapping{a.Fresh(), 5}, &x));
      REQUIRE_OK(b.tree->Insert(&rb[0], key, Mapping{b.Fresh(), 5}, &y));
      REQUIRE(x == y);
    }
    // Same mappings, data blocks named alike on both sides.
    REQUIRE(a.Dump(ra[0]) == b.Dump(rb[0]));
    for (size_t r = 1; r < ra.size(); ++r) REQUIRE(a.Dump(ra[r]) == b.Dump(rb[r]));
  }
  // Without snapshots every mapped data block is held once, alike on both
  // sides. (With them a block's count is the number of leaves holding it,
  // which depends on the shapes; RequireSound checks those. Freed blocks
  // may have become nodes since a commit.)
  for (const auto& [k, m] : a.Dump(ra[0])) {
    if (snapshots) break;
    auto ca = a.tm->sm().Get(m.first);
    auto cb = b.tm->sm().Get(m.first);
    REQUIRE_OK(ca);
    REQUIRE_OK(cb);
    INFO("key " << k << " data block " << m.first);
    REQUIRE(*ca == 1);
    REQUIRE(*cb == 1);
  }
  RequireSound(b, rb);
  RequireSound(a, ra);
}

TEST_CASE("InsertRun matches one Insert per key") {
  for (uint64_t seed = 1; seed <= 12; ++seed) RandomTest(seed, false, false);
}

TEST_CASE("InsertRun matches one Insert per key across commits") {
  for (uint64_t seed = 50; seed <= 62; ++seed) RandomTest(seed, true, false);
}

TEST_CASE("InsertRun matches one Insert per key across commits and snapshots") {
  for (uint64_t seed = 100; seed <= 112; ++seed) RandomTest(seed, true, true);
}

TEST_CASE("InsertRun into an empty tree grows it by several levels at once") {
  Side s;
  uint64_t root = 0;
  std::vector<Mapping> v;
  // More leaves than one internal node holds: two new levels.
  const uint64_t n = uint64_t(s.tree->leaf_capacity()) * (s.tree->internal_capacity() + 3);
  REQUIRE(n <= kDataBlocks);
  for (uint64_t i = 0; i < n; ++i) v.push_back(Mapping{s.Fresh(), i});
  auto bound = s.tree->CostBound(root, 1000, 1000 + n, n);
  REQUIRE_OK(bound);
  const uint64_t avail = s.tm->sm().available();
  uint64_t added = 0;
  REQUIRE_OK(s.tree->InsertRun(&root, 1000, v, &added));
  REQUIRE(added == n);
  REQUIRE(avail - s.tm->sm().available() <= *bound);
  auto top = s.tm->ReadNode(root, kVolumeTree);
  REQUIRE_OK(top);
  REQUIRE(node::Level(**top) == 2);
  auto m = s.Dump(root);
  REQUIRE(m.size() == n);
  REQUIRE(m.begin()->first == 1000);
  REQUIRE(m.rbegin()->first == 1000 + n - 1);
  REQUIRE(m.at(1000 + 77).second == 77);
  RequireSound(s, {root});
}

TEST_CASE("InsertRun replacing a block drops its reference, keeping the same one does not") {
  Side s;
  uint64_t root = 0;
  const uint64_t d1 = s.Fresh(), d2 = s.Fresh(), d3 = s.Fresh();
  bool added = false;
  REQUIRE_OK(s.tree->Insert(&root, 10, Mapping{d1, 1}, &added));
  REQUIRE_OK(s.tree->Insert(&root, 11, Mapping{d2, 1}, &added));
  uint64_t n = 0;
  // 10 keeps d1 (new checksum), 11 moves to d3, 12 is new.
  const uint64_t d4 = s.Fresh();
  std::vector<Mapping> v{{d1, 9}, {d3, 9}, {d4, 9}};
  REQUIRE_OK(s.tree->InsertRun(&root, 10, v, &n));
  REQUIRE(n == 1);
  REQUIRE(*s.tm->sm().Get(d1) == 1);
  REQUIRE(*s.tm->sm().Get(d2) == 0);
  REQUIRE(*s.tm->sm().Get(d3) == 1);
  auto m = s.Dump(root);
  REQUIRE(m.at(10) == std::make_pair(d1, uint64_t(9)));
  REQUIRE(m.at(11) == std::make_pair(d3, uint64_t(9)));
  REQUIRE(m.at(12) == std::make_pair(d4, uint64_t(9)));
  RequireSound(s, {root});
}

}  // namespace
}  // namespace stack::pool

// The entry tree and name index at scale: thousands of snapshots, commits
// that write what they changed (not the whole table), lookups, renames and
// deletes in any order, and damage to the entry tree's and name index's
// inner nodes reported as Corruption naming the block.
#include <catch2/catch.hpp>
#include <algorithm>
#include <cstdio>
#include <random>

#include "block/endian.h"
#include "pool_check.h"
#include "pool_test_util.h"

using namespace stack;
using namespace stack::pool;
using namespace stack::pool::testing;
using stack::testing::CodeOf;
using stack::testing::RandomBytes;

namespace {

using ::stack::testing::kBs;

std::string SnapName(int i) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "v@s%05d", i);
  return buf;
}

// Blocks whose bytes differ between two images of the same pool.
size_t ChangedBlocks(const MemStorage& a, const MemStorage& b) {
  size_t n = 0;
  for (const auto& [blk, data] : b.blocks) {
    auto it = a.blocks.find(blk);
    if (it == a.blocks.end() || it->second != data) ++n;
  }
  return n;
}

// Blocks one snapshot commit writes, taking the pool's storage before and
// after.
size_t SnapshotFootprint(MemPool& mp, int i) {
  auto before = mp.storage->Clone();
  REQUIRE_OK(mp.pool->Snapshot("v", SnapName(i), {"note " + std::to_string(i), {"probe"}}));
  return ChangedBlocks(*before, *mp.storage);
}

}  // namespace

TEST_CASE("thousands of entries: commits write what changed, names resolve, order holds") {
  MemPool mp;
  REQUIRE_OK(mp.Create(16384));
  REQUIRE_OK(mp.pool->CreateVolume("v", 8 << 20, {}));
  {
    auto v = mp.pool->OpenVolume("v", false);
    REQUIRE_OK(v);
    REQUIRE_OK((*v)->Write(0, RandomBytes(256 * kBs, 7)));
  }
  const size_t small = SnapshotFootprint(mp, 0);
  constexpr int kSnaps = 2500;
  for (int i = 1; i < kSnaps; ++i) {
    REQUIRE_OK(mp.pool->Snapshot("v", SnapName(i), {"note " + std::to_string(i), {"t"}}));
  }
  const size_t large = SnapshotFootprint(mp, kSnaps);
  // The format-1 table was rewritten whole: ~2,500 records of ~110 bytes
  // = ~70 blocks per commit at this size. Now a commit touches one path
  // of each tree, plus the space map: a handful of blocks either way.
  INFO("blocks written by a snapshot commit: " << small << " with 1 entry, " << large
                                               << " with " << kSnaps + 1);
  REQUIRE(large <= small + 6);
  REQUIRE(large <= 20);

  auto info = mp.pool->Info();
  REQUIRE_OK(info);
  REQUIRE(info->entries == kSnaps + 2);

  // Listing is in creation order, with every field intact.
  auto names = mp.pool->Names();
  REQUIRE_OK(names);
  REQUIRE(names->size() == kSnaps + 2);
  REQUIRE((*names)[0] == "v");
  for (int i = 0; i <= kSnaps; ++i) REQUIRE((*names)[i + 1] == SnapName(i));
  auto st = mp.pool->Stat(SnapName(1234));
  REQUIRE_OK(st);
  REQUIRE(st->note == "note 1234");
  REQUIRE(st->kind == EntryKind::kSnapshot);
  REQUIRE(CodeOf(mp.pool->Stat("v@nope").status()) == Code::kNotFound);

  // Delete a random half in random order; the rest still resolves.
  std::vector<int> order(kSnaps);
  for (int i = 0; i < kSnaps; ++i) order[i] = i;
  std::mt19937 rng(11);
  std::shuffle(order.begin(), order.end(), rng);
  std::vector<bool> gone(kSnaps + 1, false);
  for (int k = 0; k < kSnaps / 2; ++k) {
    REQUIRE_OK(mp.pool->Delete(SnapName(order[k])));
    gone[order[k]] = true;
  }
  RequireClean(*mp.pool);

  // Renaming the volume renames each of its snapshots, in one commit.
  REQUIRE_OK(mp.pool->Rename("v", "w"));
  REQUIRE_OK(mp.Reopen());
  RequireClean(*mp.pool);
  auto after = mp.pool->Names();
  REQUIRE_OK(after);
  std::vector<std::string> want{"w"};
  for (int i = 0; i <= kSnaps; ++i) {
    if (!gone[i]) want.push_back("w" + SnapName(i).substr(1));
  }
  REQUIRE(*after == want);
  for (int i = 0; i <= kSnaps; i += 97) {
    auto s = mp.pool->Stat("w" + SnapName(i).substr(1));
    if (gone[i]) {
      REQUIRE(CodeOf(s.status()) == Code::kNotFound);
    } else {
      REQUIRE_OK(s);
      REQUIRE(s->note == "note " + std::to_string(i));
    }
    REQUIRE(CodeOf(mp.pool->Stat(SnapName(i)).status()) == Code::kNotFound);
  }
  // Names freed by deletes can be taken again, and ids keep growing.
  REQUIRE_OK(mp.pool->Snapshot("w", "w" + SnapName(order[0]).substr(1), {}));
  auto last = mp.pool->Names();
  REQUIRE_OK(last);
  REQUIRE(last->back() == "w" + SnapName(order[0]).substr(1));

  // Deleting everything leaves an empty pool that checks clean.
  for (const auto& n : *last) REQUIRE_OK(mp.pool->Delete(n));
  RequireClean(*mp.pool);
  auto empty = mp.pool->Info();
  REQUIRE_OK(empty);
  REQUIRE(empty->entries == 0);
  REQUIRE_OK(mp.Reopen());
  RequireClean(*mp.pool);
}

TEST_CASE("damage to inner nodes of the entry tree and name index is reported") {
  MemPool mp;
  REQUIRE_OK(mp.Create(8192));
  REQUIRE_OK(mp.pool->CreateVolume("v", 1 << 20, {}));
  for (int i = 0; i < 1500; ++i) REQUIRE_OK(mp.pool->Snapshot("v", SnapName(i), {}));
  mp.pool.reset();
  auto base = mp.storage;
  std::map<uint16_t, std::vector<uint64_t>> by_type;
  for (auto& [blk, data] : base->blocks) by_type[TypeOf(data)].push_back(blk);
  // 7: entry tree internal node, 9: name index internal node.
  for (uint16_t t : {7, 8, 9, 10}) {
    INFO("block type " << t);
    REQUIRE(!by_type[t].empty());
  }
  for (uint16_t t : {7, 9}) {
    // Old copies of nodes stay on disk, dead; the newest (by the
    // generation in their header) are the live ones worth damaging.
    auto& blocks = by_type[t];
    std::sort(blocks.begin(), blocks.end(), [&](uint64_t a, uint64_t b) {
      return GetLE64(base->blocks[a].data() + 24) > GetLE64(base->blocks[b].data() + 24);
    });
    blocks.resize(std::min<size_t>(blocks.size(), 6));
    int detected = 0;
    for (uint64_t blk : blocks) {
      auto s = base->Clone();
      s->blocks[blk][40] ^= 0x5a;
      auto flipped = s->blocks[blk];
      auto p = Pool::Open(MemPool::StoreOver(s, nullptr), {});
      std::vector<std::string> msgs;
      if (!p.ok()) {
        msgs.push_back(p.status().ToString());
      } else {
        auto names = (*p)->Names();
        if (!names.ok()) msgs.push_back(names.status().ToString());
        auto c = (*p)->Check();
        if (!c.ok()) msgs.push_back(c.status().ToString());
        if (c.ok()) msgs.insert(msgs.end(), c->errors.begin(), c->errors.end());
        p->reset();
      }
      if (msgs.empty()) continue;  // a dead (freed) copy of a node
      ++detected;
      const std::string where = "physical block " + std::to_string(blk);
      bool named = std::any_of(msgs.begin(), msgs.end(),
                               [&](const std::string& m) { return m.find(where) != std::string::npos; });
      INFO("type " << t << " block " << blk << ": " << msgs[0]);
      REQUIRE(named);
      REQUIRE(s->blocks[blk] == flipped);  // nothing repaired behind our back
    }
    INFO("type " << t);
    REQUIRE(detected > 0);
  }
}

TEST_CASE("verify reads by windows and runs and reports every bad block") {
  MemPool mp;
  REQUIRE_OK(mp.Create(12000));
  constexpr uint64_t kN = 9000;  // more than one window of mappings
  REQUIRE_OK(mp.pool->CreateVolume("v", kN * kBs, {}));
  auto data = RandomBytes(kN * kBs, 3);
  {
    auto v = mp.pool->OpenVolume("v", false);
    REQUIRE_OK(v);
    REQUIRE_OK((*v)->Write(0, data));
  }
  REQUIRE_OK(mp.pool->Snapshot("v", "v@s", {}));  // shares every block
  REQUIRE_OK(mp.pool->Commit());
  auto clean = mp.pool->Verify();
  REQUIRE_OK(clean);
  REQUIRE(clean->ok);
  REQUIRE(clean->blocks_checked == kN);  // shared blocks are read once
  mp.pool.reset();
  const std::vector<uint64_t> victims{10, 4500, 8999};
  for (uint64_t l : victims) {
    std::vector<uint8_t> want(data.begin() + l * kBs, data.begin() + (l + 1) * kBs);
    bool found = false;
    for (auto& [blk, bytes] : mp.storage->blocks) {
      if (bytes == want) {
        bytes[100] ^= 1;
        found = true;
        break;
      }
    }
    REQUIRE(found);
  }
  REQUIRE_OK(mp.Reopen(/*read_only=*/true));
  auto r = mp.pool->Verify();
  REQUIRE_OK(r);
  INFO(r->ToJson());
  REQUIRE(!r->ok);
  REQUIRE(r->bad_blocks == victims.size());
  for (uint64_t l : victims) {
    const std::string at = "logical block " + std::to_string(l) + " ";
    REQUIRE(std::any_of(r->errors.begin(), r->errors.end(),
                        [&](const std::string& e) { return e.find(at) != std::string::npos; }));
  }
}

TEST_CASE("entries made with a given identity keep it across a reopen") {
  MemPool mp;
  REQUIRE_OK(mp.Create(256));
  EntryIdentity vid{"0123abcd-4567-4890-a123-456789abcdef", "", 1234567890123456789};
  REQUIRE_OK(mp.pool->CreateVolume("v", 1 << 20, {}, vid));
  EntryIdentity sid{"fedcba98-7654-4321-8fed-cba987654321", "11111111-2222-4333-8444-555555555555",
                    42};
  REQUIRE_OK(mp.pool->Snapshot("v", "v@s", {"n", {}}, sid));
  // Malformed: refused before any change.
  for (const char* bad : {"0123abcd-4567-4890-a123-456789abcde", "0123abcd_4567-4890-a123-456789abcdef",
                          "0123abcd-4567-4890-a123-456789abcdeg"}) {
    CHECK(mp.pool->Snapshot("v", "v@t", {}, {bad, "", 0}).code() == Code::kInvalidArgument);
    CHECK(mp.pool->CreateVolume("w", 1 << 20, {}, {"", bad, 0}).code() == Code::kInvalidArgument);
  }
  CHECK(mp.pool->Snapshot("v", "v@t", {}, {"", "", -1}).code() == Code::kInvalidArgument);
  REQUIRE_OK(mp.pool->Commit());
  REQUIRE_OK(mp.Reopen());
  auto v = mp.pool->Stat("v");
  REQUIRE_OK(v);
  CHECK(v->uuid == vid.uuid);
  CHECK(v->parent_uuid.empty());
  CHECK(v->created_unix_ns == vid.created_unix_ns);
  auto s = mp.pool->Stat("v@s");
  REQUIRE_OK(s);
  CHECK(s->uuid == sid.uuid);
  CHECK(s->parent_uuid == sid.parent_uuid);
  CHECK(s->created_unix_ns == 42);
  // Without an identity: fresh uuid, the source as parent, now.
  REQUIRE_OK(mp.pool->Snapshot("v", "v@u", {}, {}));
  auto u = mp.pool->Stat("v@u");
  REQUIRE_OK(u);
  CHECK(u->uuid != sid.uuid);
  CHECK(u->parent_uuid == vid.uuid);
  CHECK(u->created_unix_ns > 42);
  auto names = mp.pool->Names();
  REQUIRE_OK(names);
  CHECK(names->size() == 3);
  RequireClean(*mp.pool);
}

// Corruption: flip bytes in every kind of metadata block and in data
// blocks; opening, reading, check and verify must report Corruption naming
// the block, never crash, never repair behind the user's back.
#include <catch2/catch.hpp>
#include <random>
#include <set>

#include "block/endian.h"
#include "pool_test_util.h"

using namespace stack;
using namespace stack::pool;
using namespace stack::pool::testing;
using stack::testing::RandomBytes;

namespace {

using ::stack::testing::kBs;

std::shared_ptr<MemStorage> BuildPool() {
  MemPool mp;
  REQUIRE_OK(mp.Create(2048));
  REQUIRE_OK(mp.pool->CreateVolume("v", 4 << 20, {"note", {"tag"}}));
  auto v = mp.pool->OpenVolume("v", false);
  REQUIRE_OK(v);
  REQUIRE_OK((*v)->Write(0, RandomBytes(2 << 20, 1)));  // 512 blocks: internal nodes
  REQUIRE_OK(mp.pool->Snapshot("v", "v@s", {}));
  REQUIRE_OK((*v)->Write(1 << 20, RandomBytes(64 * kBs, 2)));
  v->reset();
  REQUIRE_OK(mp.pool->Commit());
  auto s = mp.storage;
  mp.pool.reset();
  return s;
}

struct Outcome {
  std::vector<std::string> corruption;  // messages of Corruption errors / report lines
  std::vector<std::string> other;       // non-Corruption errors
};

Outcome Probe(std::shared_ptr<MemStorage> s) {
  Outcome o;
  auto note = [&](const Status& st) {
    if (st.ok()) return;
    (st.code() == Code::kCorruption ? o.corruption : o.other).push_back(st.ToString());
  };
  auto p = Pool::Open(MemPool::StoreOver(s, nullptr), {});
  if (!p.ok()) {
    note(p.status());
    return o;
  }
  auto list = (*p)->List();
  note(list.status());
  for (const char* name : {"v", "v@s"}) {
    auto d = (*p)->OpenVolume(name, true);
    if (!d.ok()) {
      note(d.status());
      continue;
    }
    std::vector<uint8_t> buf((*d)->size_bytes());
    note((*d)->Read(0, buf));
  }
  // The paired walk of the two trees meets the damage as Corruption too.
  note((*p)->Diff("v@s", "v", [](const DiffRange&) { return Status::Ok(); }));
  auto c = (*p)->Check();
  note(c.status());
  if (c.ok()) o.corruption.insert(o.corruption.end(), c->errors.begin(), c->errors.end());
  auto v = (*p)->Verify();
  note(v.status());
  if (v.ok()) o.corruption.insert(o.corruption.end(), v->errors.begin(), v->errors.end());
  return o;
}

// Same entries, same content, both Check-clean.
bool Same(std::shared_ptr<MemStorage> a, std::shared_ptr<MemStorage> b) {
  auto pa = Pool::Open(MemPool::StoreOver(a, nullptr), {});
  auto pb = Pool::Open(MemPool::StoreOver(b->Clone(), nullptr), {});
  if (!pa.ok() || !pb.ok()) return false;
  for (auto* p : {&*pa, &*pb}) {
    auto c = (**p).Check();
    if (!c.ok() || !c->ok) return false;
  }
  for (const char* name : {"v", "v@s"}) {
    if (ReadEntry(**pa, name) != ReadEntry(**pb, name)) return false;
  }
  return true;
}

bool Mentions(const std::vector<std::string>& msgs, const std::string& what) {
  for (auto& m : msgs) {
    if (m.find(what) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("flipped bytes in any metadata or data block are reported, never repaired") {
  auto base = BuildPool();
  std::map<uint16_t, std::vector<uint64_t>> by_type;
  for (auto& [blk, data] : base->blocks) by_type[TypeOf(data)].push_back(blk);
  // Every kind of block exists in this pool.
  for (uint16_t t : {0, 1, 2, 3, 4, 5, 8, 10}) {
    INFO("block type " << t);
    REQUIRE(!by_type[t].empty());
  }
  std::mt19937_64 rng(42);
  int cases = 0;
  std::map<uint16_t, int> detected, undetected;
  for (auto& [type, blocks] : by_type) {
    if (type == 1) continue;  // superblocks: own test below
    for (size_t i = 0; i < blocks.size() && i < 6; ++i) {
      uint64_t blk = blocks[(i * 7919) % blocks.size()];
      for (size_t off : {size_t(0), size_t(9), size_t(17), size_t(40), size_t(rng() % kBs)}) {
        auto s = base->Clone();
        s->blocks[blk][off] ^= 0x5a;
        auto flipped = s->blocks[blk];
        INFO("type " << type << " block " << blk << " offset " << off);
        Outcome o = Probe(s);
        INFO("other errors: " << (o.other.empty() ? "" : o.other[0]));
        REQUIRE(o.other.empty());
        ++cases;
        if (o.corruption.empty()) {
          // Not detected: then the block must be dead (freed, unreferenced)
          // and everything reads exactly as before: no bad data escaped.
          REQUIRE(Same(s, base));
          ++undetected[type];
          continue;
        }
        ++detected[type];
        REQUIRE(Mentions(o.corruption, "physical block " + std::to_string(blk)));
        if (type == 0) {
          REQUIRE(Mentions(o.corruption, "logical block"));
          bool named = Mentions(o.corruption, "volume 'v'") || Mentions(o.corruption, "snapshot 'v@s'");
          REQUIRE(named);
        }
        // Nothing rewrote the damaged block.
        REQUIRE(s->blocks[blk] == flipped);
      }
    }
  }
  REQUIRE(cases >= 100);
  for (uint16_t t : {0, 2, 3, 4, 5, 8, 10}) {
    INFO("type " << t << " detected " << detected[t] << " undetected " << undetected[t]);
    REQUIRE(detected[t] > 0);
  }
}

// Superblock copies: pool_superblock_test.cc.

// The superblock's four copies (spec/pool-format.md, "Crash model"): every
// pattern a crash can leave is recovered on its own and reported; damage to
// a committed copy is repaired from its twin and reported; two unreadable
// copies of a slot are refused unless the loss is accepted; truncated and
// empty files say so.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>

#include "block/endian.h"
#include "pool_check.h"
#include "pool_test_util.h"

using namespace stack;
using namespace stack::pool;
using namespace stack::pool::testing;
using stack::testing::CodeOf;
using stack::testing::RandomBytes;
using stack::testing::TempDir;

namespace {

using ::stack::testing::kBs;

uint64_t GenOf(const MemStorage& s, uint64_t block) {
  return GetLE64(s.blocks.at(block).data() + 24);
}

// A pool whose last commit creates volume "late": losing the newest
// generation is visible as "late" missing.
std::shared_ptr<MemStorage> BuildPool() {
  MemPool mp;
  REQUIRE_OK(mp.Create(1024));
  REQUIRE_OK(mp.pool->CreateVolume("v", 1 << 20, {}));
  {
    auto v = mp.pool->OpenVolume("v", false);
    REQUIRE_OK(v);
    REQUIRE_OK((*v)->Write(0, RandomBytes(64 * kBs, 1)));
  }
  REQUIRE_OK(mp.pool->Snapshot("v", "v@s", {}));
  REQUIRE_OK(mp.pool->CreateVolume("late", 1 << 20, {}));
  auto s = mp.storage;
  mp.pool.reset();
  return s;
}

Result<std::unique_ptr<Pool>> OpenOn(std::shared_ptr<MemStorage> s, bool read_only,
                                     bool accept = false) {
  PoolOpenOptions o;
  o.read_only = read_only;
  o.accept_lost_generation = accept;
  return Pool::Open(MemPool::StoreOver(std::move(s), nullptr), o);
}

uint64_t Generation(Pool& p) {
  auto i = p.Info();
  REQUIRE_OK(i);
  return i->generation;
}

bool Has(Pool& p, const std::string& name) {
  auto st = p.Stat(name);
  return st.ok();
}

std::string Joined(const std::vector<std::string>& v) {
  std::string o;
  for (auto& s : v) o += s + "\n";
  return o;
}

void Flip(MemStorage& s, uint64_t block) { s.blocks[block][100] ^= 1; }

// After a writer's open, all four copies agree: a reader sees no warning
// and the check is clean.
void RequireWholeAfterWriter(std::shared_ptr<MemStorage> s) {
  { REQUIRE_OK(OpenOn(s, false)); }
  auto p = OpenOn(s, true);
  REQUIRE_OK(p);
  INFO(Joined((*p)->open_warnings()));
  REQUIRE((*p)->open_warnings().empty());
  auto c = (*p)->Check();
  REQUIRE_OK(c);
  INFO(c->ToJson());
  REQUIRE(c->ok);
  REQUIRE(c->warnings.empty());
}

}  // namespace

TEST_CASE("four superblock copies: generation g in slot g % 2, primary then mirror") {
  auto base = BuildPool();
  const uint64_t g = std::max(GenOf(*base, 0), GenOf(*base, 1));
  const uint64_t s = g % 2, o = 1 - s;
  REQUIRE(GenOf(*base, s) == g);
  REQUIRE(GenOf(*base, s + 2) == g);
  REQUIRE(GenOf(*base, o) == g - 1);
  REQUIRE(GenOf(*base, o + 2) == g - 1);
  auto p = OpenOn(base, true);
  REQUIRE_OK(p);
  REQUIRE((*p)->open_warnings().empty());
  REQUIRE(Generation(**p) == g);
  RequireClean(**p);
}

TEST_CASE("superblock damage and torn copies: the exact outcome of each") {
  auto base = BuildPool();
  const uint64_t g = std::max(GenOf(*base, 0), GenOf(*base, 1));
  const uint64_t s = g % 2, o = 1 - s;
  const std::string gs = std::to_string(g);
  auto name = [](uint64_t block) {
    return "slot " + std::to_string(block % 2) + (block >= 2 ? " mirror" : " primary") +
           " (block " + std::to_string(block) + ")";
  };

  SECTION("newest primary damaged: opened from its mirror, reported, check fails, writer repairs") {
    auto st = base->Clone();
    Flip(*st, s);
    auto p = OpenOn(st, true);
    REQUIRE_OK(p);
    REQUIRE(Generation(**p) == g);
    REQUIRE(Has(**p, "late"));
    REQUIRE((*p)->open_warnings().size() == 1);
    const std::string w = (*p)->open_warnings()[0];
    INFO(w);
    REQUIRE(Contains(w, "superblock " + name(s) + " superblock at physical block " +
                            std::to_string(s) + ": checksum mismatch"));
    REQUIRE(Contains(w, "opened generation " + gs + " from " + name(s + 2)));
    auto c = (*p)->Check();
    REQUIRE_OK(c);
    REQUIRE(!c->ok);
    REQUIRE(Contains(Joined(c->errors), name(s)));
    p->reset();
    RequireWholeAfterWriter(st);
    REQUIRE(st->blocks[s] == base->blocks[s]);
  }

  SECTION("newest mirror damaged: indistinguishable from a torn commit, opened from the primary") {
    auto st = base->Clone();
    Flip(*st, s + 2);
    auto p = OpenOn(st, true);
    REQUIRE_OK(p);
    REQUIRE(Generation(**p) == g);
    REQUIRE((*p)->open_warnings().size() == 1);
    const std::string w = (*p)->open_warnings()[0];
    INFO(w);
    REQUIRE(Contains(w, name(s + 2)));
    REQUIRE(Contains(w, "the commit of generation " + gs +
                            " stopped before its mirror was written; opened generation " + gs +
                            " from " + name(s)));
    auto c = (*p)->Check();
    REQUIRE_OK(c);
    REQUIRE(c->ok);  // nothing lost, nothing a crash could not do
    REQUIRE(c->warnings.size() == 1);
    p->reset();
    RequireWholeAfterWriter(st);
    REQUIRE(st->blocks[s + 2] == base->blocks[s + 2]);
  }

  SECTION("both copies of the newest generation damaged: Corruption, the flag opens g - 1") {
    auto st = base->Clone();
    Flip(*st, s);
    Flip(*st, s + 2);
    auto p = OpenOn(st, true);
    REQUIRE(CodeOf(p) == Code::kCorruption);
    const std::string m = p.status().message();
    INFO(m);
    REQUIRE(Contains(m, "both copies of superblock slot " + std::to_string(s) + " are unreadable"));
    REQUIRE(Contains(m, "may have held generation " + gs));
    REQUIRE(Contains(m, "--accept-lost-generation"));
    // Read-only with the flag: generation g - 1, saying what is lost.
    auto q = OpenOn(st, true, true);
    REQUIRE_OK(q);
    REQUIRE(Generation(**q) == g - 1);
    REQUIRE(!Has(**q, "late"));
    REQUIRE(Has(**q, "v@s"));
    REQUIRE(Contains(Joined((*q)->open_warnings()), "lost: generation " + gs));
    auto c = (*q)->Check();
    REQUIRE_OK(c);
    REQUIRE(!c->ok);
    q->reset();
    REQUIRE(st->blocks[s] != base->blocks[s]);  // a reader changed nothing
    // A writer with the flag commits at once: the pool is whole again.
    {
      auto w = OpenOn(st, false, true);
      REQUIRE_OK(w);
      REQUIRE(Generation(**w) == g);  // g - 1 committed again as g
      REQUIRE(!Has(**w, "late"));
    }
    auto r = OpenOn(st, true);
    REQUIRE_OK(r);
    REQUIRE((*r)->open_warnings().empty());
    REQUIRE(!Has(**r, "late"));
    RequireClean(**r);
  }

  SECTION("older primary unreadable: the torn start of commit g + 1, opened g automatically") {
    auto st = base->Clone();
    Flip(*st, o);
    auto p = OpenOn(st, true);
    REQUIRE_OK(p);
    REQUIRE(Generation(**p) == g);
    REQUIRE((*p)->open_warnings().size() == 1);
    const std::string w = (*p)->open_warnings()[0];
    INFO(w);
    REQUIRE(Contains(w, name(o)));
    REQUIRE(Contains(w, "the commit of generation " + std::to_string(g + 1) +
                            " was interrupted while writing it"));
    REQUIRE(Contains(w, "opened generation " + gs));
    auto c = (*p)->Check();
    REQUIRE_OK(c);
    REQUIRE(c->ok);
    REQUIRE(c->warnings.size() == 1);
    p->reset();
    RequireWholeAfterWriter(st);
  }

  SECTION("older mirror damaged: no crash does that; reported, check fails, nothing lost") {
    auto st = base->Clone();
    Flip(*st, o + 2);
    auto p = OpenOn(st, true);
    REQUIRE_OK(p);
    REQUIRE(Generation(**p) == g);
    REQUIRE((*p)->open_warnings().size() == 1);
    const std::string w = (*p)->open_warnings()[0];
    INFO(w);
    REQUIRE(Contains(w, name(o + 2)));
    REQUIRE(Contains(w, "damaged after its generation was committed"));
    auto c = (*p)->Check();
    REQUIRE_OK(c);
    REQUIRE(!c->ok);
    p->reset();
    RequireWholeAfterWriter(st);
    REQUIRE(st->blocks[o + 2] == base->blocks[o + 2]);
  }

  SECTION("both copies of the older slot unreadable: g + 1 may be lost, refused without the flag") {
    auto st = base->Clone();
    Flip(*st, o);
    st->blocks[o + 2].assign(kBs, 0);
    auto p = OpenOn(st, false);
    REQUIRE(CodeOf(p) == Code::kCorruption);
    const std::string m = p.status().message();
    INFO(m);
    REQUIRE(Contains(m, "may have held generation " + std::to_string(g + 1)));
    REQUIRE(Contains(m, name(o + 2) + ": all zeros"));
    REQUIRE(Contains(m, "--accept-lost-generation"));
    auto q = OpenOn(st, true, true);
    REQUIRE_OK(q);
    REQUIRE(Generation(**q) == g);
    REQUIRE(Has(**q, "late"));
  }

  SECTION("all four copies unreadable: what each held and why it was rejected") {
    auto st = base->Clone();
    Flip(*st, 0);
    st->blocks[1].assign(kBs, 0);
    st->blocks[2][8] ^= 0xff;  // the magic
    Flip(*st, 3);
    auto p = OpenOn(st, true);
    REQUIRE(CodeOf(p) == Code::kCorruption);
    const std::string m = p.status().message();
    INFO(m);
    REQUIRE(Contains(m, "slot 0 primary (block 0): superblock at physical block 0: checksum mismatch"));
    REQUIRE(Contains(m, "slot 1 primary (block 1): all zeros"));
    REQUIRE(Contains(m, "slot 0 mirror (block 2): superblock at physical block 2: bad magic"));
    REQUIRE(Contains(m, "its header says generation " + std::to_string(GenOf(*base, 3))));
    REQUIRE(!Contains(m, "not found"));
  }
}

TEST_CASE("a crash at each write of a commit opens the last complete or the new generation") {
  // a: committed at g. b: a plus one commit (g + 1), whose metadata blocks
  // were flushed before its superblock copies were written.
  auto a = BuildPool();
  const uint64_t g = std::max(GenOf(*a, 0), GenOf(*a, 1));
  const uint64_t o = (g + 1) % 2;
  auto b = a->Clone();
  {
    auto p = OpenOn(b, false);
    REQUIRE_OK(p);
    REQUIRE_OK((*p)->SetMeta("late", {"changed", {}}));
    REQUIRE(Generation(**p) == g + 1);
  }
  // 0 old, 1 new, 2 torn: the new header over the old fields (a superblock's
  // generations differ only in its first ~150 bytes, so any tear at a
  // 512-byte boundary leaves it wholly old or wholly new; a tear inside
  // that first sector is what leaves it unreadable).
  auto state = [&](int primary, int mirror) {
    auto st = b->Clone();
    for (auto [block, what] : {std::pair{o, primary}, std::pair{o + 2, mirror}}) {
      if (what == 0) st->blocks[block] = a->blocks[block];
      if (what == 2) {
        st->blocks[block] = a->blocks[block];
        std::copy(b->blocks[block].begin(), b->blocks[block].begin() + 64,
                  st->blocks[block].begin());
      }
    }
    return st;
  };
  struct Case {
    int primary, mirror;
    uint64_t opened;
    const char* warning;  // "" = none
  };
  for (Case c : {Case{0, 0, g, ""},
                 Case{2, 0, g, "was interrupted while writing it"},
                 Case{1, 0, g + 1, "stopped before its mirror was written"},
                 Case{1, 2, g + 1, "stopped before its mirror was written"},
                 Case{1, 1, g + 1, ""}}) {
    INFO("primary " << c.primary << " mirror " << c.mirror);
    auto st = state(c.primary, c.mirror);
    auto p = OpenOn(st, true);
    REQUIRE_OK(p);
    REQUIRE(Generation(**p) == c.opened);
    const std::string w = Joined((*p)->open_warnings());
    INFO(w);
    if (*c.warning) {
      REQUIRE(Contains(w, c.warning));
    } else {
      REQUIRE(w.empty());
    }
    auto rep = (*p)->Check();
    REQUIRE_OK(rep);
    REQUIRE(rep->ok);
    auto stat = (*p)->Stat("late");
    REQUIRE_OK(stat);
    REQUIRE(stat->note == (c.opened == g ? "" : "changed"));
    p->reset();
    RequireWholeAfterWriter(st);
  }
}

TEST_CASE("an empty, truncated or ragged pool file is Corruption naming the sizes") {
  TempDir dir;
  const std::string path = dir.file("p.pool");
  PoolCreateOptions co;
  co.size_bytes = 1 << 20;
  {
    auto p = Pool::Create(path, co);
    REQUIRE_OK(p);
  }
  std::vector<uint8_t> orig(1 << 20);
  {
    FILE* f = std::fopen(path.c_str(), "rb");
    REQUIRE(f);
    REQUIRE(std::fread(orig.data(), 1, orig.size(), f) == orig.size());
    std::fclose(f);
  }
  auto open_truncated = [&](uint64_t size) {
    FILE* f = std::fopen(path.c_str(), "wb");
    REQUIRE(f);
    REQUIRE(std::fwrite(orig.data(), 1, size, f) == size);
    std::fclose(f);
    auto p = Pool::Open(path, {});
    INFO("size " << size << ": " << p.status().ToString());
    REQUIRE(CodeOf(p) == Code::kCorruption);
    return p.status().message();
  };
  std::string m = open_truncated(0);
  REQUIRE(Contains(m, "is 0 bytes: not a pool (or truncated)"));
  m = open_truncated(512 << 10);
  REQUIRE(Contains(m, "is truncated: 524288 bytes, but the pool it holds"));
  REQUIRE(Contains(m, "spans 1048576 bytes"));
  m = open_truncated(kBs);
  REQUIRE(Contains(m, "is truncated: 4096 bytes"));
  REQUIRE(Contains(m, "spans 1048576 bytes"));
  m = open_truncated(6000);
  REQUIRE(Contains(m, "is 6000 bytes, not a whole number of 4096-byte blocks"));
  REQUIRE(Contains(m, "describes a pool of 1048576 bytes"));
  m = open_truncated(100);
  REQUIRE(Contains(m, "is 100 bytes"));
}

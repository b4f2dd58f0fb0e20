// Pool::Diff against a model of the writes made: every block of every
// entry carries the id of the write that put it there (0: a hole), so the
// expected diff of two entries is where their ids differ. Random writes,
// discards, snapshots, clones, rollbacks, resizes and deletes over many
// seeds; pairs of one lineage and of unrelated ones. Plus: the walk reads
// few nodes for a small change in a large volume (a count, not a time), and
// NotFound for missing entries.
#include <catch2/catch.hpp>
#include <map>
#include <random>

#include "pool_test_util.h"

using namespace stack;
using namespace stack::pool;
using namespace stack::pool::testing;
using stack::testing::CodeOf;

namespace {

using ::stack::testing::kBs;

struct Collected {
  std::vector<DiffRange> ranges;
  DiffStats stats;
};

Result<Collected> RunDiff(Pool& p, const std::string& from, const std::string& to) {
  Collected c;
  Status s = p.Diff(
      from, to,
      [&](const DiffRange& r) {
        c.ranges.push_back(r);
        return Status::Ok();
      },
      &c.stats);
  if (!s.ok()) return s;
  return c;
}

std::string Show(const std::vector<DiffRange>& rs) {
  std::string out;
  for (auto& r : rs) {
    out += (r.kind == DiffKind::kWritten ? "W" : "D") + std::to_string(r.offset / kBs) + "+" +
           std::to_string(r.length / kBs) + " ";
  }
  return out;
}

struct ModelEntry {
  bool snapshot = false;
  uint64_t lineage = 0;          // the created volume it descends from
  std::vector<uint64_t> writes;  // per block: id of the write there, 0 = hole
};

// What Diff must report for from -> to (from == nullptr: an empty volume).
std::vector<DiffRange> Expected(const ModelEntry* from, const ModelEntry& to) {
  std::vector<DiffRange> out;
  for (uint64_t b = 0; b < to.writes.size(); ++b) {
    uint64_t f = from && b < from->writes.size() ? from->writes[b] : 0;
    uint64_t t = to.writes[b];
    if (f == t) continue;
    DiffKind k = t != 0 ? DiffKind::kWritten : DiffKind::kDiscarded;
    if (!out.empty() && out.back().kind == k && out.back().offset + out.back().length == b * kBs) {
      out.back().length += kBs;
    } else {
      out.push_back(DiffRange{b * kBs, kBs, k});
    }
  }
  return out;
}

class DiffModelRun {
 public:
  explicit DiffModelRun(uint64_t seed) : rng_(seed) {}

  void Run(int steps) {
    REQUIRE_OK(mp_.Create(16384, kBs, /*cache=*/1 << 20));
    for (int s = 0; s < steps; ++s) {
      Step(s);
      CheckPairs(s);
    }
  }

 private:
  uint64_t R(uint64_t n) { return n ? rng_() % n : 0; }
  std::string Pick(bool volumes_only) {
    std::vector<std::string> c;
    for (auto& [n, e] : model_) {
      if (!volumes_only || !e.snapshot) c.push_back(n);
    }
    return c.empty() ? "" : c[R(c.size())];
  }
  static std::string VolPart(const std::string& n) { return n.substr(0, n.find('@')); }

  void Step(int s) {
    Pool& p = *mp_.pool;
    int op = static_cast<int>(R(100));
    INFO("step " << s << " op " << op);
    if (model_.size() < 2 || op < 5) {  // create
      std::string name = "v" + std::to_string(next_++);
      uint64_t blocks = 1 + R(1200);
      REQUIRE_OK(p.CreateVolume(name, blocks * kBs, {}));
      model_[name] = ModelEntry{false, next_, std::vector<uint64_t>(blocks, 0)};
      return;
    }
    if (op < 50) {  // write: long runs grow trees past one leaf; zero blocks become holes
      std::string v = Pick(true);
      auto& m = model_[v];
      uint64_t nb = m.writes.size();
      uint64_t off = R(nb), len = 1 + R(std::min<uint64_t>(nb - off, R(4) == 0 ? 400 : 16));
      std::vector<uint8_t> d(len * kBs);
      for (uint64_t i = 0; i < len; ++i) {
        bool zero = R(8) == 0;
        uint64_t id = zero ? 0 : ++write_id_;
        if (!zero) std::fill(d.begin() + i * kBs, d.begin() + (i + 1) * kBs, uint8_t(1 + id % 250));
        m.writes[off + i] = id;
      }
      auto dev = p.OpenVolume(v, false);
      REQUIRE_OK(dev);
      REQUIRE_OK((*dev)->Write(off * kBs, d));
      return;
    }
    if (op < 58) {  // discard / write-zeroes
      std::string v = Pick(true);
      auto& m = model_[v];
      uint64_t nb = m.writes.size();
      uint64_t off = R(nb), len = 1 + R(std::min<uint64_t>(nb - off, 200));
      auto dev = p.OpenVolume(v, false);
      REQUIRE_OK(dev);
      if (R(2)) {
        REQUIRE_OK((*dev)->Discard(off * kBs, len * kBs));
      } else {
        REQUIRE_OK((*dev)->WriteZeroes(off * kBs, len * kBs));
      }
      std::fill(m.writes.begin() + off, m.writes.begin() + off + len, 0);
      return;
    }
    if (op < 70) {  // snapshot
      std::string src = Pick(false);
      std::string name = VolPart(src) + "@s" + std::to_string(next_++);
      REQUIRE_OK(p.Snapshot(src, name, {}));
      model_[name] = model_[src];
      model_[name].snapshot = true;
      return;
    }
    if (op < 78) {  // clone
      std::string src = Pick(false);
      std::string name = "c" + std::to_string(next_++);
      REQUIRE_OK(p.Clone(src, name, {}));
      model_[name] = model_[src];
      model_[name].snapshot = false;
      return;
    }
    if (op < 83) {  // rollback to one of its snapshots
      std::string v = Pick(true);
      std::vector<std::string> snaps;
      for (auto& [n, e] : model_) {
        if (e.snapshot && VolPart(n) == v) snaps.push_back(n);
      }
      if (snaps.empty()) return;
      std::string sn = snaps[R(snaps.size())];
      REQUIRE_OK(p.Rollback(v, sn));
      model_[v].writes = model_[sn].writes;
      return;
    }
    if (op < 88) {  // delete anything (keeps the others' lineage intact)
      if (model_.size() < 4) return;
      std::string n = Pick(false);
      REQUIRE_OK(p.Delete(n));
      model_.erase(n);
      return;
    }
    if (op < 94) {  // resize
      std::string v = Pick(true);
      uint64_t blocks = 1 + R(1200);
      REQUIRE_OK(p.Resize(v, blocks * kBs));
      model_[v].writes.resize(blocks, 0);
      return;
    }
    if (op < 97) {
      REQUIRE_OK(p.Commit());
      return;
    }
    REQUIRE_OK(mp_.Reopen(false, 1 << 20));
  }

  void CheckPair(const std::string& from, const std::string& to) {
    INFO("diff '" << from << "' -> '" << to << "'");
    Pool& p = *mp_.pool;
    auto got = RunDiff(p, from, to);
    REQUIRE_OK(got);
    const ModelEntry* f = from.empty() ? nullptr : &model_.at(from);
    const ModelEntry& t = model_.at(to);
    auto want = Expected(f, t);
    INFO("got  " << Show(got->ranges));
    INFO("want " << Show(want));
    REQUIRE(got->ranges.size() == want.size());
    uint64_t w = 0, d = 0;
    for (size_t i = 0; i < want.size(); ++i) {
      REQUIRE(got->ranges[i].offset == want[i].offset);
      REQUIRE(got->ranges[i].length == want[i].length);
      REQUIRE(got->ranges[i].kind == want[i].kind);
      (want[i].kind == DiffKind::kWritten ? w : d) += want[i].length;
    }
    REQUIRE(got->stats.written_bytes == w);
    REQUIRE(got->stats.discarded_bytes == d);
    ++checked_;
    // Lineage: entries sharing a write share a block, so the walk must see
    // it; entries of unrelated lineages that both map something share none.
    bool f_any = f && std::any_of(f->writes.begin(), f->writes.end(), [](uint64_t x) { return x; });
    bool t_any = std::any_of(t.writes.begin(), t.writes.end(), [](uint64_t x) { return x; });
    bool common = false;
    for (uint64_t b = 0; f && b < t.writes.size() && b < f->writes.size(); ++b) {
      common |= t.writes[b] != 0 && t.writes[b] == f->writes[b];
    }
    if (common) REQUIRE(got->stats.by_address);
    if (f && f->lineage != t.lineage && f_any && t_any) {
      REQUIRE_FALSE(got->stats.by_address);
      ++unrelated_;
    }
  }

  void CheckPairs(int s) {
    INFO("after step " << s);
    std::vector<std::string> names;
    for (auto& [n, e] : model_) names.push_back(n);
    // Each snapshot against its volume, both ways.
    for (auto& n : names) {
      if (!model_[n].snapshot || !model_.count(VolPart(n))) continue;
      CheckPair(n, VolPart(n));
      CheckPair(VolPart(n), n);
    }
    // Random pairs (clones and origins, unrelated entries, an entry and
    // itself) and the empty base.
    for (int i = 0; i < 4; ++i) CheckPair(names[R(names.size())], names[R(names.size())]);
    CheckPair("", names[R(names.size())]);
  }

  std::mt19937_64 rng_;
  MemPool mp_;
  std::map<std::string, ModelEntry> model_;
  uint64_t next_ = 0;
  uint64_t write_id_ = 0;

 public:
  uint64_t checked_ = 0;
  uint64_t unrelated_ = 0;
};

}  // namespace

TEST_CASE("diff matches a model of the writes made, many seeds", "[pool][diff]") {
  uint64_t unrelated = 0;
  for (uint64_t seed = 1; seed <= 24; ++seed) {
    INFO("seed " << seed);
    DiffModelRun run(seed);
    run.Run(120);
    REQUIRE(run.checked_ > 0);
    unrelated += run.unrelated_;
  }
  // The unrelated-lineage fallback was exercised, not only shared trees.
  REQUIRE(unrelated > 0);
}

TEST_CASE("diff of a clone against its origin snapshot and of unrelated volumes",
          "[pool][diff]") {
  MemPool mp;
  REQUIRE_OK(mp.Create(4096));
  Pool& p = *mp.pool;
  REQUIRE_OK(p.CreateVolume("a", 256 * kBs, {}));
  {
    auto dev = p.OpenVolume("a", false);
    REQUIRE_OK(dev);
    REQUIRE_OK((*dev)->Write(0, std::vector<uint8_t>(200 * kBs, 7)));
  }
  REQUIRE_OK(p.Snapshot("a", "a@base", {}));
  REQUIRE_OK(p.Clone("a@base", "c", {}));
  {
    auto dev = p.OpenVolume("c", false);
    REQUIRE_OK(dev);
    REQUIRE_OK((*dev)->Write(10 * kBs, std::vector<uint8_t>(3 * kBs, 9)));
    REQUIRE_OK((*dev)->Discard(100 * kBs, 5 * kBs));
    REQUIRE_OK((*dev)->Write(250 * kBs, std::vector<uint8_t>(kBs, 1)));
  }
  auto d = RunDiff(p, "a@base", "c");
  REQUIRE_OK(d);
  REQUIRE(Show(d->ranges) == "W10+3 D100+5 W250+1 ");
  REQUIRE(d->stats.by_address);
  REQUIRE(d->stats.written_bytes == 4 * kBs);
  REQUIRE(d->stats.discarded_bytes == 5 * kBs);
  // The same content written independently: every mapped block differs.
  REQUIRE_OK(p.CreateVolume("b", 256 * kBs, {}));
  {
    auto dev = p.OpenVolume("b", false);
    REQUIRE_OK(dev);
    REQUIRE_OK((*dev)->Write(0, std::vector<uint8_t>(200 * kBs, 7)));
  }
  auto u = RunDiff(p, "a@base", "b");
  REQUIRE_OK(u);
  REQUIRE(Show(u->ranges) == "W0+200 ");
  REQUIRE_FALSE(u->stats.by_address);
  // Nothing past to's size; the size change is not a range.
  REQUIRE_OK(p.Resize("c", 50 * kBs));
  auto s = RunDiff(p, "a@base", "c");
  REQUIRE_OK(s);
  REQUIRE(Show(s->ranges) == "W10+3 ");
  // An entry against itself and against an unchanged snapshot: nothing.
  REQUIRE_OK(p.Snapshot("a", "a@same", {}));
  for (auto [f, t] : {std::pair{"a", "a"}, std::pair{"a@base", "a"}, std::pair{"a@same", "a@base"}}) {
    auto e = RunDiff(p, f, t);
    REQUIRE_OK(e);
    REQUIRE(e->ranges.empty());
    REQUIRE(e->stats.by_address);
  }
}

TEST_CASE("diff reads few nodes for a small change in a large volume", "[pool][diff]") {
  // ~48k mapped blocks make a three-level tree (a leaf holds ~168 keys, an
  // internal node ~254 children); the pool lives in a sparse file.
  stack::testing::TempDir dir;
  PoolCreateOptions o;
  o.size_bytes = 256ull << 20;
  auto pr = Pool::Create(dir.file("pool"), o);
  REQUIRE_OK(pr);
  Pool& p = **pr;
  const uint64_t blocks = 48 * 1024;
  REQUIRE_OK(p.CreateVolume("big", blocks * kBs, {}));
  auto dev = p.OpenVolume("big", false);
  REQUIRE_OK(dev);
  {
    std::vector<uint8_t> chunk(1024 * kBs, 0x5a);
    for (uint64_t off = 0; off < blocks; off += 1024) REQUIRE_OK((*dev)->Write(off * kBs, chunk));
  }
  REQUIRE_OK(p.Snapshot("big", "big@s1", {}));
  auto full = RunDiff(p, "", "big@s1");
  REQUIRE_OK(full);
  REQUIRE(full->stats.written_bytes == blocks * kBs);
  const uint64_t all_nodes = full->stats.nodes_visited;
  INFO("nodes in the tree " << all_nodes);
  REQUIRE(all_nodes > 280);  // really three levels: 1 + >=2 + ~290 leaves

  // Three single-block writes far apart: three paths of three nodes each
  // differ, on each side.
  const std::vector<uint64_t> at = {5, blocks / 2, blocks - 3};
  for (uint64_t b : at) REQUIRE_OK((*dev)->Write(b * kBs, std::vector<uint8_t>(kBs, 0x33)));
  auto d = RunDiff(p, "big@s1", "big");
  REQUIRE_OK(d);
  REQUIRE(Show(d->ranges) == "W5+1 W" + std::to_string(blocks / 2) + "+1 W" +
                                 std::to_string(blocks - 3) + "+1 ");
  REQUIRE(d->stats.by_address);
  INFO("nodes visited " << d->stats.nodes_visited);
  REQUIRE(d->stats.nodes_visited <= 2 * (1 + 2 * 3));
  // A discard of one leaf's worth and the reverse direction stay small too.
  REQUIRE_OK((*dev)->Discard(20000 * kBs, 100 * kBs));
  auto r = RunDiff(p, "big", "big@s1");
  REQUIRE_OK(r);
  REQUIRE(r->stats.written_bytes == (3 + 100) * kBs);
  REQUIRE(r->stats.nodes_visited < 40);
  // A volume that grew a level since its snapshot: the walk copes with the
  // two heights and still reads only around the change.
  REQUIRE_OK(p.CreateVolume("small", blocks * kBs, {}));
  auto sdev = p.OpenVolume("small", false);
  REQUIRE_OK(sdev);
  REQUIRE_OK((*sdev)->Write(0, std::vector<uint8_t>(100 * kBs, 1)));
  REQUIRE_OK(p.Snapshot("small", "small@one-leaf", {}));
  REQUIRE_OK((*sdev)->Write(1000 * kBs, std::vector<uint8_t>(500 * kBs, 2)));
  auto g = RunDiff(p, "small@one-leaf", "small");
  REQUIRE_OK(g);
  REQUIRE(Show(g->ranges) == "W1000+500 ");
  auto g2 = RunDiff(p, "small", "small@one-leaf");
  REQUIRE_OK(g2);
  REQUIRE(Show(g2->ranges) == "D1000+500 ");
}

TEST_CASE("diff names a missing entry, and a sink error stops the walk", "[pool][diff]") {
  MemPool mp;
  REQUIRE_OK(mp.Create(1024));
  Pool& p = *mp.pool;
  REQUIRE_OK(p.CreateVolume("v", 64 * kBs, {}));
  auto none = [](const DiffRange&) { return Status::Ok(); };
  Status s = p.Diff("v@nope", "v", none);
  REQUIRE(CodeOf(s) == Code::kNotFound);
  REQUIRE(s.ToString().find("v@nope") != std::string::npos);
  s = p.Diff("v", "w", none);
  REQUIRE(CodeOf(s) == Code::kNotFound);
  REQUIRE(s.ToString().find("'w'") != std::string::npos);
  s = p.Diff("", "w", none);
  REQUIRE(CodeOf(s) == Code::kNotFound);
  {
    auto dev = p.OpenVolume("v", false);
    REQUIRE_OK(dev);
    REQUIRE_OK((*dev)->Write(0, std::vector<uint8_t>(kBs, 1)));
    REQUIRE_OK((*dev)->Write(5 * kBs, std::vector<uint8_t>(kBs, 1)));
  }
  int calls = 0;
  s = p.Diff("", "v", [&](const DiffRange&) {
    ++calls;
    return Status::Busy("sink full");
  });
  REQUIRE(CodeOf(s) == Code::kBusy);
  REQUIRE(s.ToString() == "Busy: sink full");
  REQUIRE(calls == 1);
}

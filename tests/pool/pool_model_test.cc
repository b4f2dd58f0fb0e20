// Model-based randomized test: random operation sequences against an
// in-memory model of every volume and snapshot, compared byte for byte
// with Check() clean after every step.
#include <catch2/catch.hpp>
#include <algorithm>
#include <random>
#include <set>

#include "pool_test_util.h"

using namespace stack;
using namespace stack::pool;
using namespace stack::pool::testing;
using stack::testing::CodeOf;

namespace {

using ::stack::testing::kBs;

struct ModelEntry {
  bool snapshot = false;
  bool read_only = false;
  std::vector<uint8_t> data;
};

class ModelRun {
 public:
  explicit ModelRun(uint64_t seed) : rng_(seed) {}

  void Run(int steps) {
    REQUIRE_OK(mp_.Create(8192, kBs, /*cache=*/0));
    for (int s = 0; s < steps; ++s) {
      Step(s);
      Verify(s);
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
  std::string VolPart(const std::string& n) { return n.substr(0, n.find('@')); }

  void Step(int s) {
    Pool& p = *mp_.pool;
    int op = static_cast<int>(R(100));
    INFO("step " << s << " op " << op);
    if (model_.empty() || op < 6) {  // create
      std::string name = "v" + std::to_string(next_++);
      uint64_t blocks = 1 + R(512);
      REQUIRE_OK(p.CreateVolume(name, blocks * kBs, {}));
      model_[name] = ModelEntry{false, false, std::vector<uint8_t>(blocks * kBs, 0)};
      touched_.insert(name);
      return;
    }
    if (op < 50) {  // write (random, zero, or partly zero)
      std::string v = Pick(true);
      if (v.empty() || model_[v].read_only) return;
      auto& m = model_[v];
      uint64_t nb = m.data.size() / kBs;
      uint64_t off = R(nb), len = 1 + R(std::min<uint64_t>(nb - off, 64));
      std::vector<uint8_t> d = stack::testing::RandomBytes(len * kBs, rng_());
      if (R(5) == 0) std::fill(d.begin(), d.begin() + kBs, 0);
      if (R(10) == 0) std::fill(d.begin(), d.end(), 0);
      auto dev = p.OpenVolume(v, false);
      REQUIRE_OK(dev);
      REQUIRE_OK((*dev)->Write(off * kBs, d));
      std::copy(d.begin(), d.end(), m.data.begin() + off * kBs);
      touched_.insert(v);
      return;
    }
    if (op < 58) {  // discard / write-zeroes
      std::string v = Pick(true);
      if (v.empty() || model_[v].read_only) return;
      auto& m = model_[v];
      uint64_t nb = m.data.size() / kBs;
      uint64_t off = R(nb), len = 1 + R(nb - off);
      auto dev = p.OpenVolume(v, false);
      REQUIRE_OK(dev);
      if (R(2)) {
        REQUIRE_OK((*dev)->Discard(off * kBs, len * kBs));
      } else {
        REQUIRE_OK((*dev)->WriteZeroes(off * kBs, len * kBs));
      }
      std::fill(m.data.begin() + off * kBs, m.data.begin() + (off + len) * kBs, 0);
      touched_.insert(v);
      return;
    }
    if (op < 66) {  // snapshot
      std::string src = Pick(false);
      std::string name = VolPart(src) + "@s" + std::to_string(next_++);
      REQUIRE_OK(p.Snapshot(src, name, {}));
      model_[name] = ModelEntry{true, true, model_[src].data};
      touched_.insert(name);
      touched_.insert(src);
      return;
    }
    if (op < 72) {  // clone
      std::string src = Pick(false);
      std::string name = "c" + std::to_string(next_++);
      REQUIRE_OK(p.Clone(src, name, {}));
      model_[name] = ModelEntry{false, false, model_[src].data};
      touched_.insert(name);
      touched_.insert(src);
      return;
    }
    if (op < 76) {  // rollback to one of its snapshots
      std::string v = Pick(true);
      if (v.empty() || model_[v].read_only) return;
      std::vector<std::string> snaps;
      for (auto& [n, e] : model_) {
        if (e.snapshot && VolPart(n) == v) snaps.push_back(n);
      }
      if (snaps.empty()) return;
      std::string s = snaps[R(snaps.size())];
      REQUIRE_OK(p.Rollback(v, s));
      model_[v].data = model_[s].data;
      touched_.insert(v);
      touched_.insert(s);
      return;
    }
    if (op < 82) {  // delete anything
      if (model_.size() < 3) return;
      std::string n = Pick(false);
      REQUIRE_OK(p.Delete(n));
      model_.erase(n);
      return;
    }
    if (op < 86) {  // resize
      std::string v = Pick(true);
      if (v.empty() || model_[v].read_only) return;
      uint64_t blocks = 1 + R(512);
      REQUIRE_OK(p.Resize(v, blocks * kBs));
      model_[v].data.resize(blocks * kBs, 0);
      touched_.insert(v);
      return;
    }
    if (op < 88) {  // rename a volume (and its snapshots)
      std::string v = Pick(true);
      if (v.empty()) return;
      std::string nn = "r" + std::to_string(next_++);
      REQUIRE_OK(p.Rename(v, nn));
      std::map<std::string, ModelEntry> renamed;
      for (auto& [n, e] : model_) {
        if (n == v) renamed[nn] = e;
        else if (VolPart(n) == v && n != VolPart(n)) renamed[nn + n.substr(v.size())] = e;
        else renamed[n] = e;
      }
      model_ = std::move(renamed);
      return;
    }
    if (op < 90) {  // read-only toggle
      std::string v = Pick(true);
      if (v.empty()) return;
      bool ro = !model_[v].read_only;
      REQUIRE_OK(p.SetReadOnly(v, ro));
      model_[v].read_only = ro;
      return;
    }
    if (op < 96) {
      REQUIRE_OK(p.Commit());
      return;
    }
    REQUIRE_OK(mp_.Reopen(false, 0));
    for (auto& [n, e] : model_) touched_.insert(n);
  }

  void Verify(int s) {
    INFO("after step " << s);
    Pool& p = *mp_.pool;
    auto r = p.Check();
    struct Clear {
      std::set<std::string>& t;
      ~Clear() { t.clear(); }
    } clear{touched_};
    REQUIRE_OK(r);
    INFO(r->ToJson());
    REQUIRE(r->ok);
    auto list = p.List();
    REQUIRE_OK(list);
    REQUIRE(list->size() == model_.size());
    for (auto& e : *list) {
      INFO("entry " << e.name);
      REQUIRE(model_.count(e.name));
      auto& m = model_[e.name];
      REQUIRE(e.size_bytes == m.data.size());
      REQUIRE((e.kind == EntryKind::kSnapshot) == m.snapshot);
      REQUIRE(e.read_only == m.read_only);
      // Content: every entry every 10 steps, touched entries every step.
      if (s % 10 == 9 || touched_.count(e.name)) REQUIRE(FirstDifference(p, e.name, m.data) == -1);
      // One-block reads take the pool's mapping cache, not the tree: read
      // some blocks of every entry each step (so chunks are cached before
      // the next change) and every block of a touched one.
      VerifyBlocks(p, e.name, m.data, touched_.count(e.name) ? m.data.size() / kBs : 16);
      REQUIRE(e.exclusive_bytes <= e.mapped_bytes);
    }
  }

  void VerifyBlocks(Pool& p, const std::string& name, const std::vector<uint8_t>& want,
                    uint64_t count) {
    auto d = p.OpenVolume(name, true);
    REQUIRE_OK(d);
    const uint64_t blocks = want.size() / kBs;
    const bool all = count >= blocks;
    std::vector<uint8_t> got(kBs);
    for (uint64_t i = 0; i < (all ? blocks : count); ++i) {
      const uint64_t b = all ? i : R(blocks);
      INFO("one-block read of block " << b);
      REQUIRE_OK((*d)->Read(b * kBs, got));
      REQUIRE(std::equal(got.begin(), got.end(), want.begin() + b * kBs));
    }
  }

  std::mt19937_64 rng_;
  MemPool mp_;
  std::map<std::string, ModelEntry> model_;
  std::set<std::string> touched_;
  int next_ = 0;
};

}  // namespace

TEST_CASE("random operations match the model byte for byte") {
  for (uint64_t seed = 1; seed <= 8; ++seed) {
    INFO("seed " << seed);
    ModelRun run(seed);
    run.Run(300);
  }
}

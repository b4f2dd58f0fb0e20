#include "crash_harness.h"

#include <algorithm>
#include <random>

#include "pool_test_util.h"

namespace stack::pool::testing {
namespace {

using ::stack::testing::kBs;

std::string VolPart(const std::string& n) { return n.substr(0, n.find('@')); }

}  // namespace

CrashWorkload CrashWorkload::Generate(uint64_t seed, int n_ops) {
  std::mt19937_64 rng(seed);
  auto R = [&](uint64_t n) { return n ? rng() % n : 0; };
  CrashWorkload w;
  PoolState st;
  w.states.push_back(st);
  int next = 0;
  auto pick = [&](bool volumes_only) {
    std::vector<std::string> c;
    for (auto& [n, d] : st) {
      if (!volumes_only || n.find('@') == std::string::npos) c.push_back(n);
    }
    return c.empty() ? std::string() : c[R(c.size())];
  };
  while (static_cast<int>(w.ops.size()) < n_ops) {
    CrashOp op;
    int r = static_cast<int>(R(100));
    std::string v = pick(true);
    if (v.empty() || r < 5) {
      op.kind = CrashOp::kCreate;
      // Some are hidden (names starting with '.', as unfinished builds
      // are): the superblock counts them in the same commit.
      op.a = (R(3) == 0 ? ".v" : "v") + std::to_string(next++);
      op.len = 16 + R(112);
      st[op.a] = std::vector<uint8_t>(op.len * kBs, 0);
    } else if (r < 55) {
      op.kind = CrashOp::kWrite;
      op.a = v;
      uint64_t nb = st[v].size() / kBs;
      op.off = R(nb);
      op.len = 1 + R(std::min<uint64_t>(nb - op.off, 24));
      op.seed = rng();
      auto d = stack::testing::RandomBytes(op.len * kBs, op.seed);
      std::copy(d.begin(), d.end(), st[v].begin() + op.off * kBs);
    } else if (r < 62) {
      op.kind = CrashOp::kDiscard;
      op.a = v;
      uint64_t nb = st[v].size() / kBs;
      op.off = R(nb);
      op.len = 1 + R(nb - op.off);
      std::fill(st[v].begin() + op.off * kBs, st[v].begin() + (op.off + op.len) * kBs, 0);
    } else if (r < 70) {
      op.kind = CrashOp::kSnapshot;
      op.a = v;
      op.b = v + "@s" + std::to_string(next++);
      st[op.b] = st[v];
    } else if (r < 75) {
      op.kind = CrashOp::kClone;
      op.a = pick(false);
      op.b = "c" + std::to_string(next++);
      st[op.b] = st[op.a];
    } else if (r < 81) {
      if (st.size() < 3) continue;
      op.kind = CrashOp::kDelete;
      op.a = pick(false);
      st.erase(op.a);
    } else if (r < 85) {
      std::vector<std::string> snaps;
      for (auto& [n, d] : st) {
        if (n.find('@') != std::string::npos && VolPart(n) == v) snaps.push_back(n);
      }
      if (snaps.empty()) continue;
      op.kind = CrashOp::kRollback;
      op.a = v;
      op.b = snaps[R(snaps.size())];
      st[v] = st[op.b];
    } else if (r < 89) {
      op.kind = CrashOp::kResize;
      op.a = v;
      op.len = 8 + R(120);
      st[v].resize(op.len * kBs, 0);
    } else if (r < 92) {
      // Publication (hidden -> visible) and its reverse: the volume and
      // its snapshots change names, and the hidden count, in one commit.
      op.kind = CrashOp::kRename;
      op.a = v;
      op.b = v[0] == '.' ? v.substr(1) : "." + v;
      if (st.count(op.b)) continue;
      PoolState renamed;
      for (auto& [n, d] : st) {
        renamed[VolPart(n) == v ? op.b + n.substr(v.size()) : n] = std::move(d);
      }
      st = std::move(renamed);
    } else {
      op.kind = CrashOp::kFlush;
      op.a = v;
    }
    w.ops.push_back(op);
    w.states.push_back(st);
  }
  return w;
}

namespace {

Status Apply(Pool& p, const CrashOp& op) {
  switch (op.kind) {
    case CrashOp::kCreate: return p.CreateVolume(op.a, op.len * kBs, {});
    case CrashOp::kWrite: {
      ASSIGN_OR_RETURN(auto d, p.OpenVolume(op.a, false));
      return d->Write(op.off * kBs, stack::testing::RandomBytes(op.len * kBs, op.seed));
    }
    case CrashOp::kDiscard: {
      ASSIGN_OR_RETURN(auto d, p.OpenVolume(op.a, false));
      return d->Discard(op.off * kBs, op.len * kBs);
    }
    case CrashOp::kSnapshot: return p.Snapshot(op.a, op.b, {});
    case CrashOp::kClone: return p.Clone(op.a, op.b, {});
    case CrashOp::kDelete: return p.Delete(op.a);
    case CrashOp::kRollback: return p.Rollback(op.a, op.b);
    case CrashOp::kResize: return p.Resize(op.a, op.len * kBs);
    case CrashOp::kRename: return p.Rename(op.a, op.b);
    case CrashOp::kFlush: {
      ASSIGN_OR_RETURN(auto d, p.OpenVolume(op.a, false));
      return d->Flush();
    }
  }
  return Status::Internal("bad op");
}

Result<PoolState> ReadState(Pool& p) {
  PoolState st;
  ASSIGN_OR_RETURN(auto list, p.List());
  for (auto& e : list) {
    ASSIGN_OR_RETURN(auto d, p.OpenVolume(e.name, true));
    std::vector<uint8_t> buf(d->size_bytes());
    RETURN_IF_ERROR(d->Read(0, buf));
    st[e.name] = std::move(buf);
  }
  return st;
}

}  // namespace

CrashResult RunCrashCase(const CrashWorkload& w, int64_t cut_at, CutMode mode, uint64_t seed) {
  CrashResult res;
  auto fail = [&](const std::string& e) {
    res.ok = false;
    res.error = e;
    return res;
  };
  MemPool mp;
  Status st = mp.Create(1024, kBs, /*cache=*/0, /*faulty=*/true);
  if (!st.ok()) return fail("create: " + st.ToString());
  uint64_t base = mp.ctl->mutating_ops();
  if (cut_at >= 0) mp.ctl->CutPowerAt(base + static_cast<uint64_t>(cut_at), mode, seed);
  size_t durable = 0;  // index into w.states of the last committed state
  size_t failed_op = w.ops.size();
  for (size_t i = 0; i < w.ops.size(); ++i) {
    st = Apply(*mp.pool, w.ops[i]);
    if (!st.ok()) {
      if (!mp.ctl->power_cut()) {
        return fail("op " + std::to_string(i) + " failed without a power cut: " + st.ToString());
      }
      failed_op = i;
      break;
    }
    if (w.ops[i].commits()) durable = i + 1;
  }
  if (failed_op == w.ops.size()) {
    // Every op ran: the closing commit is the last mutating step.
    failed_op = w.ops.size() - 1;
    st = mp.pool->Commit();
    if (st.ok()) {
      durable = w.ops.size();
    } else if (!mp.ctl->power_cut()) {
      return fail("final commit: " + st.ToString());
    }
  }
  res.cut = mp.ctl->power_cut();
  res.mutating_ops = mp.ctl->mutating_ops() - base;
  // Reboot: drop the pool (its closing commit fails if the power is off).
  st = mp.Reopen();
  if (!st.ok()) return fail("reopen: " + st.ToString());
  auto check = mp.pool->Check();
  if (!check.ok()) return fail("check: " + check.status().ToString());
  if (!check->ok) return fail("check: " + check->ToJson());
  auto state = ReadState(*mp.pool);
  if (!state.ok()) return fail("read back: " + state.status().ToString());
  size_t last = std::min(failed_op + 1, w.states.size() - 1);
  bool match = false;
  for (size_t i = durable; i <= last && !match; ++i) match = (*state == w.states[i]);
  if (!match) {
    std::string names;
    for (auto& [n, d] : *state) names += n + " ";
    return fail("recovered state matches no model state in [" + std::to_string(durable) + ", " +
                std::to_string(last) + "]; entries: " + names);
  }
  // The hidden-entry count and the uuid index match the entries (check
  // verified both; this is what the open path relies on).
  auto hidden = mp.pool->HiddenNames();
  if (!hidden.ok()) return fail("hidden names: " + hidden.status().ToString());
  std::vector<std::string> want_hidden;
  for (auto& [n, d] : *state) {
    if (n[0] == '.') want_hidden.push_back(n);
    auto info = mp.pool->Stat(n);
    if (!info.ok()) return fail("stat " + n + ": " + info.status().ToString());
    auto by_uuid = mp.pool->FindByUuid(info->uuid);
    if (!by_uuid.ok() || by_uuid->size() != 1 || (*by_uuid)[0].name != n)
      return fail("uuid index does not lead to " + n);
  }
  std::sort(hidden->begin(), hidden->end());
  if (*hidden != want_hidden) return fail("hidden names differ from the entries starting with '.'");
  // The recovered pool keeps working.
  if (!state->empty()) {
    const std::string& name = state->begin()->first;
    if (name.find('@') == std::string::npos && !state->begin()->second.empty()) {
      auto d = mp.pool->OpenVolume(name, false);
      if (!d.ok()) return fail("open after recovery: " + d.status().ToString());
      st = (*d)->Write(0, stack::testing::RandomBytes(kBs, 99));
      if (st.ok()) st = (*d)->Flush();
      if (!st.ok()) return fail("write after recovery: " + st.ToString());
      auto c2 = mp.pool->Check();
      if (!c2.ok() || !c2->ok) return fail("check after recovery write");
    }
  }
  return res;
}

}  // namespace stack::pool::testing

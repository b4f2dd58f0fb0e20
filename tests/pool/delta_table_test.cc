// DeltaTable (layers/pool/src/delta_table.h) against a std::map model:
// inserts that grow the table, lookups of absent blocks, iteration, and a
// Clear that shrinks a table grown far beyond what it holds.
#include <catch2/catch.hpp>

#include <map>
#include <random>

#include "delta_table.h"

using stack::pool::Delta;
using stack::pool::DeltaTable;

namespace {
void RequireSame(DeltaTable& t, const std::map<uint64_t, int64_t>& model) {
  REQUIRE(t.size() == model.size());
  size_t seen = 0;
  t.ForEach([&](uint64_t b, const Delta& d) {
    auto it = model.find(b);
    REQUIRE(it != model.end());
    REQUIRE(d.delta == it->second);
    ++seen;
  });
  REQUIRE(seen == model.size());
  for (const auto& [b, v] : model) {
    const Delta* d = t.Find(b);
    REQUIRE(d != nullptr);
    REQUIRE(d->delta == v);
  }
}
}  // namespace

TEST_CASE("delta table: inserts, growth, absent lookups and iteration match a model") {
  std::mt19937_64 rng(7);
  DeltaTable t;
  std::map<uint64_t, int64_t> model;
  for (int round = 0; round < 3; ++round) {
    // A write stream's consecutive blocks, then scattered ones (several
    // growths past the initial 1024 slots).
    const uint64_t base = rng() % (1ull << 40);
    for (uint64_t i = 0; i < 20000; ++i) {
      t[base + i].delta += 1;
      model[base + i] += 1;
    }
    for (int i = 0; i < 20000; ++i) {
      const uint64_t b = rng() % 100000;
      t[b].delta -= 2;
      model[b] -= 2;
    }
    RequireSame(t, model);
    for (int i = 0; i < 20000; ++i) {
      const uint64_t b = (1ull << 50) + rng() % 1000000;  // never inserted
      REQUIRE(t.Find(b) == nullptr);
    }
    t.Clear();
    model.clear();
    REQUIRE(t.empty());
    REQUIRE(t.Find(base) == nullptr);
  }
}

TEST_CASE("delta table: a cleared table is empty and usable, flags included") {
  DeltaTable t;
  for (uint64_t b = 0; b < 100000; ++b) t[b].is_new = true;
  t.Clear();  // shrinks: it held far fewer than it can
  REQUIRE(t.size() == 0);
  for (uint64_t b = 0; b < 100000; ++b) REQUIRE(t.Find(b) == nullptr);
  Delta& d = t[42];
  REQUIRE(d.delta == 0);
  REQUIRE_FALSE(d.is_new);
  REQUIRE_FALSE(d.freed);
  d.freed = true;
  REQUIRE(t.Find(42)->freed);
  REQUIRE(t.size() == 1);
}

TEST_CASE("delta table: one small transaction keeps the grown table, a run of them shrinks it") {
  DeltaTable t;
  for (uint64_t b = 0; b < 100000; ++b) t[b].delta += 1;
  t.Clear();
  const size_t grown = t.slot_count();
  REQUIRE(grown >= 200000);
  // A few entries between large transactions (a receive's resume-point
  // commit): the table keeps its size, so the next large one does not grow
  // it again through fresh memory.
  t[7].delta += 1;
  t.Clear();
  REQUIRE(t.slot_count() == grown);
  for (uint64_t b = 0; b < 100000; ++b) t[b].delta += 1;
  REQUIRE(t.slot_count() == grown);
  t.Clear();
  // Small transactions only: it shrinks after a few of them, and stays right.
  for (int i = 0; i < 16; ++i) {
    t[uint64_t(i)].delta += 1;
    t.Clear();
  }
  REQUIRE(t.slot_count() < grown / 16);
  REQUIRE(t.empty());
  t[3].delta -= 1;
  REQUIRE(t.Find(3)->delta == -1);
  REQUIRE(t.Find(7) == nullptr);
}

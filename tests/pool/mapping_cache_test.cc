// MappingCache (layers/pool/src/mapping_cache.h) on its own: lookups after
// inserts, erasures and evictions in a table small enough that probe runs
// collide and wrap, compared with a std::map model.
#include <catch2/catch.hpp>

#include <map>
#include <random>

#include "mapping_cache.h"

using stack::pool::Mapping;
using stack::pool::MappingCache;

TEST_CASE("the mapping cache agrees with a model through erasures and evictions") {
  constexpr uint64_t kCb = MappingCache::kChunkBlocks;
  MappingCache cache(0);  // the minimum: 16 chunks in 32 slots
  std::map<std::pair<uint64_t, uint64_t>, uint64_t> model;  // (id, chunk) -> tag
  std::mt19937_64 rng(7);
  for (int step = 0; step < 20000; ++step) {
    INFO("step " << step);
    const uint64_t id = 1 + rng() % 4, chunk = rng() % 24, op = rng() % 10;
    if (op < 5) {
      MappingCache::Chunk* c = cache.Insert(id, chunk * kCb + rng() % kCb);
      const uint64_t tag = 1000 + step;
      c->Set(chunk * kCb + 3, Mapping{tag, tag});
      model[{id, chunk}] = tag;
    } else if (op < 8) {
      const uint64_t first = chunk * kCb + rng() % kCb, end = first + rng() % (3 * kCb) + 1;
      cache.EraseRange(id, first, end);
      for (uint64_t c = first / kCb; c <= (end - 1) / kCb; ++c) model.erase({id, c});
    } else if (op < 9) {
      cache.EraseEntry(id);
      std::erase_if(model, [&](auto& kv) { return kv.first.first == id; });
    } else {
      // A lookup: whatever the cache holds must be what was put there last
      // (it may have evicted it: then it is absent, never stale).
      const MappingCache::Chunk* c = cache.Find(id, chunk * kCb);
      auto it = model.find({id, chunk});
      if (c) {
        REQUIRE(it != model.end());
        REQUIRE(c->Has(chunk * kCb + 3));
        REQUIRE(c->Get(chunk * kCb + 3).phys == it->second);
        REQUIRE_FALSE(c->Has(chunk * kCb + 4));
      }
    }
    REQUIRE(cache.size() <= 16);
    // Everything the cache still holds agrees with the model.
    for (uint64_t i = 1; i <= 4; ++i) {
      for (uint64_t c = 0; c < 24; ++c) {
        const MappingCache::Chunk* got = cache.Find(i, c * kCb);
        if (!got) continue;
        auto it = model.find({i, c});
        REQUIRE(it != model.end());
        REQUIRE(got->Get(c * kCb + 3).phys == it->second);
      }
    }
  }
  // Recently inserted chunks stay (eviction takes the oldest first).
  cache.Clear();
  REQUIRE(cache.size() == 0);
  for (uint64_t c = 0; c < 40; ++c) cache.Insert(9, c * kCb);
  REQUIRE(cache.size() == 16);
  for (uint64_t c = 24; c < 40; ++c) REQUIRE(cache.Find(9, c * kCb) != nullptr);
  REQUIRE(cache.Find(9, 0) == nullptr);
}

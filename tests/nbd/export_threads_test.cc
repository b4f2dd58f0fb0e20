// Export (nbd/export.h) under parallel requests, as nbdkit's PARALLEL
// thread model issues them, over a real pool. Labelled threads (TSan phase).
#include <catch2/catch.hpp>

#include <atomic>
#include <cstring>
#include <random>
#include <thread>

#include "export.h"
#include "pool/pool.h"
#include "test_util.h"

namespace stack::nbd {
namespace {

// Several NBD worker threads on one export over a real pool (16 KiB pool
// blocks under a 4 KiB served device would need RMW; here the pool block is
// the unit and requests are unaligned): each thread owns a byte range whose
// edges share blocks with its neighbours', so only the export's exclusion
// keeps one thread's read-modify-write from undoing another's write. Run
// under TSan (label threads).
TEST_CASE("Export: parallel unaligned writers over a pool lose nothing") {
  stack::testing::TempDir t;
  pool::PoolCreateOptions o;
  o.size_bytes = 16ull << 20;
  auto created = pool::Pool::Create(t.file("p.stk"), o);
  REQUIRE(created.ok());
  std::shared_ptr<pool::Pool> p = std::move(*created);
  REQUIRE(p->CreateVolume("v", 1ull << 20, {}).ok());
  auto first = p->OpenVolume("v", false, "NBD export 'v' (test)");
  REQUIRE(first.ok());
  ExportParams params;
  params.name = "v";
  auto ex = std::make_unique<Export>(params, std::move(*first), [p] {
    return p->OpenVolume("v", false, "NBD export 'v' (test)");
  });
  constexpr int kThreads = 4;
  const uint64_t span = ex->size() / kThreads - 1000;  // edges inside blocks
  std::vector<std::vector<uint8_t>> model(kThreads);
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int i = 0; i < kThreads; ++i) {
    model[i].assign(span, 0);
    threads.emplace_back([&, i] {
      std::mt19937_64 rng(100 + i);
      const uint64_t base = 777 + uint64_t(i) * span;
      for (int n = 0; n < 3000; ++n) {
        // Mostly small writes in the blocks shared with a neighbour.
        uint64_t off, len;
        if (n % 4 != 0) {
          off = (n % 2 ? rng() % 4096 : span - 1 - rng() % 4096);
          len = 1 + rng() % std::min<uint64_t>(span - off, 64);
        } else {
          off = rng() % span;
          len = 1 + rng() % std::min<uint64_t>(span - off, 9000);
        }
        std::vector<uint8_t> data(len);
        for (auto& b : data) b = static_cast<uint8_t>(rng() | 1);
        if (!ex->Write(base + off, data, n % 50 == 0).ok()) ++failures;
        std::memcpy(model[i].data() + off, data.data(), len);
        std::vector<uint8_t> back(len);
        if (!ex->Read(base + off, back).ok() || back != data) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(failures == 0);
  for (int i = 0; i < kThreads; ++i) {
    std::vector<uint8_t> got(span);
    REQUIRE(ex->Read(777 + uint64_t(i) * span, got).ok());
    CHECK(got == model[i]);
  }
  ex.reset();
  REQUIRE(p->Commit().ok());
}

}  // namespace
}  // namespace stack::nbd

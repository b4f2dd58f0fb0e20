// The BlockDevice contract on pool volumes, clones and snapshots.
#include <catch2/catch.hpp>

#include "contract.h"
#include "pool_test_util.h"

using namespace stack;
using namespace stack::pool;
using namespace stack::pool::testing;
using stack::testing::ContractTarget;
using stack::testing::RunBlockDeviceContract;

namespace {

std::unique_ptr<BlockDevice> Open(std::shared_ptr<MemStorage> s, const std::string& name,
                                  bool ro) {
  PoolOpenOptions o;
  auto p = Pool::Open(MemPool::StoreOver(s, nullptr), o);
  REQUIRE_OK(p);
  auto v = (*p)->OpenVolume(name, ro);
  REQUIRE_OK(v);
  return std::make_unique<OwningVolume>(std::move(p).value(), std::move(v).value());
}

}  // namespace

TEST_CASE("pool volume meets the BlockDevice contract") {
  std::shared_ptr<MemStorage> storage;
  ContractTarget t;
  t.make = [&]() -> std::unique_ptr<BlockDevice> {
    MemPool mp;
    REQUIRE_OK(mp.Create(512));
    REQUIRE_OK(mp.pool->CreateVolume("vol", 64 * 4096, {}));
    storage = mp.storage;
    auto v = mp.pool->OpenVolume("vol", false);
    REQUIRE_OK(v);
    return std::make_unique<OwningVolume>(std::move(mp.pool), std::move(v).value());
  };
  t.reopen = [&] { return Open(storage, "vol", false); };
  t.reopen_read_only = [&] { return Open(storage, "vol", true); };
  RunBlockDeviceContract(t);
}

TEST_CASE("pool clone of a written, snapshotted volume meets the contract") {
  std::shared_ptr<MemStorage> storage;
  ContractTarget t;
  t.make = [&]() -> std::unique_ptr<BlockDevice> {
    MemPool mp;
    REQUIRE_OK(mp.Create(1024));
    REQUIRE_OK(mp.pool->CreateVolume("base", 64 * 4096, {}));
    {
      auto v = mp.pool->OpenVolume("base", false);
      REQUIRE_OK(v);
      // The contract expects a never-written device: write, then discard.
      auto data = stack::testing::RandomBytes(64 * 4096, 7);
      REQUIRE_OK((*v)->Write(0, data));
      REQUIRE_OK(mp.pool->Snapshot("base", "base@s1", {}));
      REQUIRE_OK((*v)->Discard(0, 64 * 4096));
    }
    REQUIRE_OK(mp.pool->Clone("base", "clone", {}));
    storage = mp.storage;
    auto v = mp.pool->OpenVolume("clone", false);
    REQUIRE_OK(v);
    return std::make_unique<OwningVolume>(std::move(mp.pool), std::move(v).value());
  };
  t.reopen = [&] { return Open(storage, "clone", false); };
  t.reopen_read_only = [&] { return Open(storage, "clone", true); };
  RunBlockDeviceContract(t);
}

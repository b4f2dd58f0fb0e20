// Volume devices and the pool's lifetime and entries: a device may outlive
// its Pool (its calls then fail, saying the pool is closed), and an entry
// with an open device stays put (Delete, Rollback, Rename: Busy naming the
// user).
#include <catch2/catch.hpp>

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

}  // namespace

TEST_CASE("a device that outlives its pool fails with a clear error") {
  MemPool mp;
  REQUIRE_OK(mp.Create(2048));
  REQUIRE_OK(mp.pool->CreateVolume("v", 16 * kBs, {}));
  auto dev = mp.pool->OpenVolume("v", false);
  REQUIRE_OK(dev);
  const auto data = RandomBytes(4 * kBs, 11);
  REQUIRE_OK((*dev)->Write(0, data));  // not committed yet
  mp.pool.reset();                     // commits, closes the store
  BlockDevice& d = **dev;
  // The size stays what it was, so each call reaches the pool and says why
  // it fails (not "out of range").
  REQUIRE(d.block_count() == 16);
  REQUIRE(Contains(d.describe(), "closed"));
  std::vector<uint8_t> buf(kBs);
  for (const Status& st : {d.Read(0, buf), d.Write(0, buf), d.Flush(), d.Discard(0, kBs),
                           d.WriteZeroes(0, kBs), d.AllocatedExtents(0, kBs).status()}) {
    INFO(st.ToString());
    REQUIRE(st.code() == Code::kIoError);
    REQUIRE(Contains(st.message(), "is closed"));
  }
  dev->reset();
  // The close committed the write.
  REQUIRE_OK(mp.Reopen());
  auto all = ReadEntry(*mp.pool, "v");
  REQUIRE(std::equal(data.begin(), data.end(), all.begin()));
  RequireClean(*mp.pool);
}

TEST_CASE("closing a pool releases its file lock even while a device is open") {
  TempDir dir;
  const std::string path = dir.file("p.pool");
  PoolCreateOptions o;
  o.size_bytes = 1 << 20;
  auto p = Pool::Create(path, o);
  REQUIRE_OK(p);
  REQUIRE_OK((*p)->CreateVolume("v", 4 * kBs, {}));
  auto dev = (*p)->OpenVolume("v", true);
  REQUIRE_OK(dev);
  REQUIRE(CodeOf(Pool::Open(path, {})) == Code::kBusy);
  p->reset();
  auto again = Pool::Open(path, {});
  REQUIRE_OK(again);
  std::vector<uint8_t> buf(kBs);
  REQUIRE(CodeOf((*dev)->Read(0, buf)) == Code::kIoError);
  dev->reset();
  RequireClean(**again);
}

TEST_CASE("an entry with an open device cannot be deleted, rolled back or renamed") {
  MemPool mp;
  REQUIRE_OK(mp.Create(2048));
  REQUIRE_OK(mp.pool->CreateVolume("v", 16 * kBs, {}));
  REQUIRE_OK(mp.pool->Snapshot("v", "v@s", {}));
  auto dev = mp.pool->OpenVolume("v", false, "NBD export vm1");
  REQUIRE_OK(dev);
  // An uncommitted write: a refusal must not abandon it.
  const auto data = RandomBytes(2 * kBs, 5);
  REQUIRE_OK((*dev)->Write(3 * kBs, data));
  for (const Status& st : {mp.pool->Delete("v"), mp.pool->Rollback("v", "s"),
                           mp.pool->Rename("v", "w")}) {
    INFO(st.ToString());
    REQUIRE(st.code() == Code::kBusy);
    REQUIRE(Contains(st.message(), "volume 'v'"));
    REQUIRE(Contains(st.message(), "NBD export vm1"));
  }
  // Nothing changed, and the running transaction is intact.
  REQUIRE_OK(mp.pool->Stat("v"));
  std::vector<uint8_t> back(data.size());
  REQUIRE_OK((*dev)->Read(3 * kBs, back));
  REQUIRE(back == data);
  // What does not move the entry stays allowed.
  REQUIRE_OK(mp.pool->Resize("v", 32 * kBs));
  REQUIRE_OK(mp.pool->SetMeta("v", {"in use", {}}));
  REQUIRE_OK(mp.pool->Snapshot("v", "v@t", {}));
  REQUIRE_OK(mp.pool->Rename("v@t", "v@u"));  // the snapshot is not in use
  REQUIRE_OK(mp.pool->Delete("v@u"));
  // A second user is named too; the old overload's label.
  {
    auto second = mp.pool->OpenVolume("v", true);
    REQUIRE_OK(second);
    Status st = mp.pool->Delete("v");
    REQUIRE(st.code() == Code::kBusy);
    REQUIRE(Contains(st.message(), "NBD export vm1"));
    REQUIRE(Contains(st.message(), "an open device"));
  }
  dev->reset();
  REQUIRE_OK(mp.pool->Rollback("v", "s"));
  REQUIRE_OK(mp.pool->Rename("v", "w"));
  REQUIRE_OK(mp.pool->Delete("w"));
  RequireClean(*mp.pool);
}

TEST_CASE("a device on a snapshot keeps its name and its volume's name") {
  MemPool mp;
  REQUIRE_OK(mp.Create(2048));
  REQUIRE_OK(mp.pool->CreateVolume("v", 16 * kBs, {}));
  REQUIRE_OK(mp.pool->Snapshot("v", "v@s", {}));
  auto snap = mp.pool->OpenVolume("v@s", true, "backup reader");
  REQUIRE_OK(snap);
  Status st = mp.pool->Delete("v@s");
  REQUIRE(st.code() == Code::kBusy);
  REQUIRE(Contains(st.message(), "snapshot 'v@s'"));
  REQUIRE(Contains(st.message(), "backup reader"));
  REQUIRE(CodeOf(mp.pool->Rename("v@s", "v@t")) == Code::kBusy);
  // Renaming the volume renames its snapshots too.
  REQUIRE(CodeOf(mp.pool->Rename("v", "w")) == Code::kBusy);
  // The volume itself is not in use: rolling it back or deleting it is fine.
  REQUIRE_OK(mp.pool->Rollback("v", "s"));
  REQUIRE_OK(mp.pool->Delete("v"));
  snap->reset();
  REQUIRE_OK(mp.pool->Delete("v@s"));
  RequireClean(*mp.pool);
}

// A full pool: NoSpace before anything changes, snapshots refused below the
// reserve, deleting a snapshot frees space, Check clean throughout.
#include <catch2/catch.hpp>

#include "pool_check.h"
#include "pool_test_util.h"

using namespace stack;
using namespace stack::pool;
using namespace stack::pool::testing;
using stack::testing::CodeOf;
using stack::testing::RandomBytes;

namespace {
using ::stack::testing::kBs;
}  // namespace

TEST_CASE("fill through writes and snapshots, NoSpace, delete a snapshot, continue") {
  MemPool mp;
  REQUIRE_OK(mp.Create(1024));  // 4 MiB, fixed
  REQUIRE_OK(mp.pool->CreateVolume("v", 16 << 20, {}));
  auto v = mp.pool->OpenVolume("v", false);
  REQUIRE_OK(v);
  const uint64_t chunk = 16 * kBs;
  // Fill: chunks of fresh data until NoSpace.
  uint64_t off = 0;
  std::map<uint64_t, std::vector<uint8_t>> written, early;
  for (;;) {
    auto d = RandomBytes(chunk, off + 1);
    Status st = (*v)->Write(off, d);
    if (!st.ok()) {
      REQUIRE(st.code() == Code::kNoSpace);
      break;
    }
    written[off] = d;
    off += chunk;
    if (off == 2 * chunk * 8) {
      // Snapshot, then diverge: v@early alone keeps the old first 8 chunks.
      REQUIRE_OK(mp.pool->Snapshot("v", "v@early", {}));
      early = written;
      for (uint64_t o = 0; o < 8 * chunk; o += chunk) {
        written[o] = RandomBytes(chunk, 1000 + o);
        REQUIRE_OK((*v)->Write(o, written[o]));
      }
    }
  }
  REQUIRE(off > (2 << 20));
  RequireClean(*mp.pool);
  // The failed write changed nothing.
  std::vector<uint8_t> buf(chunk);
  REQUIRE_OK((*v)->Read(off, buf));
  REQUIRE(std::all_of(buf.begin(), buf.end(), [](uint8_t c) { return c == 0; }));
  // A snapshot now is refused with a clear message.
  Status snap = mp.pool->Snapshot("v", "v@late", {});
  REQUIRE(snap.code() == Code::kNoSpace);
  REQUIRE(snap.message().find("reserve") != std::string::npos);
  // Once committed, overwriting needs new blocks (copy-on-write): NoSpace.
  REQUIRE_OK((*v)->Flush());
  Status ow = (*v)->Write(0, RandomBytes(chunk * 8, 77));
  INFO(ow.ToString());
  REQUIRE(ow.code() == Code::kNoSpace);
  REQUIRE_OK((*v)->Read(0, buf));
  REQUIRE(buf == written[0]);
  // Earlier data and snapshots intact after a commit and reopen.
  REQUIRE_OK((*v)->Flush());
  v->reset();
  REQUIRE_OK(mp.Reopen());
  RequireClean(*mp.pool);
  auto snapdata = ReadEntry(*mp.pool, "v@early");
  for (uint64_t o = 0; o < 2 * chunk * 8; o += chunk) {
    REQUIRE(std::equal(early[o].begin(), early[o].end(), snapdata.begin() + o));
  }
  // Delete the snapshot (works on a full pool), then overwrite: now fits.
  REQUIRE_OK(mp.pool->Delete("v@early"));
  RequireClean(*mp.pool);
  v = mp.pool->OpenVolume("v", false);
  REQUIRE_OK(v);
  REQUIRE_OK((*v)->Write(0, RandomBytes(chunk * 4, 77)));
  REQUIRE_OK((*v)->Flush());
  RequireClean(*mp.pool);
  // Freed space is reusable by new data only after the commit.
  REQUIRE_OK((*v)->Discard(0, off));
  REQUIRE_OK((*v)->Flush());
  REQUIRE_OK((*v)->Write(0, RandomBytes(chunk * 8, 78)));
  RequireClean(*mp.pool);
  auto info = mp.pool->Info();
  REQUIRE_OK(info);
  REQUIRE(info->free_bytes > 0);
}

TEST_CASE("a write that does not fit fails whole and changes nothing") {
  MemPool mp;
  REQUIRE_OK(mp.Create(256));
  REQUIRE_OK(mp.pool->CreateVolume("v", 4 << 20, {}));
  auto v = mp.pool->OpenVolume("v", false);
  REQUIRE_OK(v);
  auto d = RandomBytes(64 * kBs, 5);
  REQUIRE_OK((*v)->Write(0, d));
  auto used = mp.pool->Info()->used_bytes;
  Status st = (*v)->Write(0, RandomBytes(1 << 20, 6));  // 256 blocks > pool
  REQUIRE(st.code() == Code::kNoSpace);
  REQUIRE(mp.pool->Info()->used_bytes == used);
  std::vector<uint8_t> buf(d.size());
  REQUIRE_OK((*v)->Read(0, buf));
  REQUIRE(buf == d);
  RequireClean(*mp.pool);
}

// The reserve threshold of a growable pool counts what the file may still
// grow by: a snapshot or clone makes free only its own cost (a 128 MiB
// pool of at most 64 GiB used to grow to 720 MiB for an empty snapshot),
// and is refused once the pool, grown to its maximum, keeps too little.
TEST_CASE("a growable pool grows for data, not for the reserve threshold of a snapshot") {
  stack::testing::TempDir dir;
  SECTION("room to grow: the file keeps its size") {
    PoolCreateOptions o;
    o.size_bytes = 128 << 20;
    o.max_bytes = uint64_t(64) << 30;  // 1% of it: 655 MiB
    auto p = Pool::Create(dir.file("big.img"), o);
    REQUIRE_OK(p);
    REQUIRE_OK((*p)->CreateVolume("v", 64 << 20, {}));
    REQUIRE_OK((*p)->Snapshot("v", "v@s", {}));
    REQUIRE_OK((*p)->Clone("v@s", "c", {}));
    REQUIRE_OK((*p)->Commit());
    auto info = (*p)->Info();
    REQUIRE_OK(info);
    CHECK(info->size_bytes == (128u << 20));
    RequireClean(**p);
  }
  SECTION("grown to its maximum: refused, nothing changed") {
    PoolCreateOptions o;
    o.size_bytes = 1 << 20;
    o.max_bytes = 8 << 20;  // 64 blocks of headroom needed
    auto p = Pool::Create(dir.file("small.img"), o);
    REQUIRE_OK(p);
    REQUIRE_OK((*p)->CreateVolume("v", 16 << 20, {}));
    auto v = (*p)->OpenVolume("v", false);
    REQUIRE_OK(v);
    uint64_t off = 0;
    while ((*v)->Write(off, RandomBytes(16 * kBs, off + 1)).ok()) off += 16 * kBs;
    REQUIRE_OK((*v)->Flush());
    auto before = (*p)->Info();
    REQUIRE_OK(before);
    REQUIRE(before->size_bytes == (8u << 20));
    Status snap = (*p)->Snapshot("v", "v@late", {});
    CHECK(snap.code() == Code::kNoSpace);
    CHECK(snap.message().find("reserve threshold") != std::string::npos);
    auto after = (*p)->Info();
    REQUIRE_OK(after);
    CHECK(after->size_bytes == before->size_bytes);
    CHECK(after->entries == before->entries);
    RequireClean(**p);
  }
}

// What keeps single-entry work independent of the number of entries: the
// superblock's hidden-entry count (an open for writing learns there is no
// unfinished build without reading the entries) and the uuid index (an
// entry found by uuid with one bucket lookup). Both are kept in the same
// commits as the entries, and check refuses a wrong count.
#include <catch2/catch.hpp>
#include <cstdio>

#include "block/endian.h"
#include "format.h"
#include "pool_check.h"
#include "pool_test_util.h"

using namespace stack;
using namespace stack::pool;
using namespace stack::pool::testing;
using stack::testing::CodeOf;

namespace {

constexpr int kSnaps = 2000;

std::string SnapName(int i) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "v@s%05d", i);
  return buf;
}

// A pool over a FaultDevice (which counts reads) holding "v" and `snaps`
// snapshots of it.
void MakePool(MemPool& mp, int snaps) {
  REQUIRE_OK(mp.Create(16384, 4096, 1 << 20, /*faulty=*/true));
  REQUIRE_OK(mp.pool->CreateVolume("v", 1 << 20, {}));
  for (int i = 0; i < snaps; ++i) REQUIRE_OK(mp.pool->Snapshot("v", SnapName(i), {}));
}

// Reads that reopening for writing and asking for hidden names take.
uint64_t OpenReads(MemPool& mp) {
  REQUIRE_OK(mp.Reopen());
  const uint64_t before = mp.ctl->reads();
  (void)before;
  auto hidden = mp.pool->HiddenNames();
  REQUIRE_OK(hidden);
  REQUIRE(hidden->empty());
  return mp.ctl->reads();
}

std::vector<std::string> Hidden(Pool& p) {
  auto h = p.HiddenNames();
  REQUIRE_OK(h);
  std::sort(h->begin(), h->end());
  return *h;
}

// Rewrites the newest superblock (both copies) with `edit` applied, sealed
// again so only the edited field is wrong.
void EditSuperblock(MemPool& mp, uint64_t generation, const std::function<void(uint8_t*)>& edit) {
  for (uint64_t copy : {generation % 2, 2 + generation % 2}) {
    auto& blk = mp.storage->blocks[copy];
    REQUIRE(blk.size() >= kSuperSize);
    edit(blk.data());
    SealBlock(std::span<uint8_t>(blk.data(), kSuperSize), BlockType::kSuper, copy, generation);
  }
}

}  // namespace

TEST_CASE("opening for writing reads as much with 2,000 entries as with one") {
  MemPool small, large;
  MakePool(small, 0);
  MakePool(large, kSnaps);
  const uint64_t one = OpenReads(small), many = OpenReads(large);
  INFO("reads to open and find no hidden entry: " << one << " with 1 entry, " << many
                                                  << " with " << kSnaps + 1);
  // The old open listed every name (hundreds of entry-tree leaves here).
  REQUIRE(many <= one + 2);
}

TEST_CASE("hidden entries are counted in the commits that make, rename and delete them") {
  MemPool mp;
  MakePool(mp, 50);
  REQUIRE(Hidden(*mp.pool).empty());
  REQUIRE_OK(mp.pool->CreateVolume(".build-x", 1 << 20, {}));
  REQUIRE_OK(mp.pool->Snapshot(".build-x", ".build-x@s", {}));
  REQUIRE(Hidden(*mp.pool) == std::vector<std::string>{".build-x", ".build-x@s"});
  REQUIRE_OK(mp.Reopen());
  REQUIRE(Hidden(*mp.pool) == std::vector<std::string>{".build-x", ".build-x@s"});
  RequireClean(*mp.pool);
  // Publication: the volume and its snapshot become visible.
  REQUIRE_OK(mp.pool->Rename(".build-x", "x"));
  REQUIRE(Hidden(*mp.pool).empty());
  REQUIRE_OK(mp.Reopen());
  REQUIRE(Hidden(*mp.pool).empty());
  RequireClean(*mp.pool);
  REQUIRE_OK(mp.pool->Rename("x@s", "x@t"));
  REQUIRE_OK(mp.pool->Rename("x", ".y"));
  REQUIRE(Hidden(*mp.pool) == std::vector<std::string>{".y", ".y@t"});
  REQUIRE_OK(mp.pool->Delete(".y@t"));
  REQUIRE(Hidden(*mp.pool) == std::vector<std::string>{".y"});
  REQUIRE_OK(mp.pool->Delete(".y"));
  REQUIRE(Hidden(*mp.pool).empty());
  REQUIRE_OK(mp.Reopen());
  RequireClean(*mp.pool);
}

TEST_CASE("the uuid index finds an entry with a few reads, whatever the number of entries") {
  MemPool mp;
  MakePool(mp, kSnaps);
  REQUIRE_OK(mp.Reopen());
  auto st = mp.pool->Stat(SnapName(1234));
  REQUIRE_OK(st);
  const uint64_t before = mp.ctl->reads();
  auto found = mp.pool->FindByUuid(st->uuid);
  REQUIRE_OK(found);
  const uint64_t reads = mp.ctl->reads() - before;
  INFO("reads for one uuid lookup among " << kSnaps + 1 << " entries: " << reads);
  REQUIRE(found->size() == 1);
  REQUIRE((*found)[0].name == SnapName(1234));
  REQUIRE((*found)[0].kind == EntryKind::kSnapshot);
  REQUIRE(reads <= 8);  // name-index path + the record's leaf; a listing reads hundreds
  REQUIRE_OK(mp.pool->Delete(SnapName(1234)));
  found = mp.pool->FindByUuid(st->uuid);
  REQUIRE_OK(found);
  REQUIRE(found->empty());
  // Uuids given by the caller (receive) may repeat: both are found.
  const std::string u = "01234567-89ab-4cde-8f01-23456789abcd";
  REQUIRE_OK(mp.pool->CreateVolume("a", 1 << 20, {}, {u, "", 0}));
  REQUIRE_OK(mp.pool->Snapshot("a", "a@s", {}, {u, "", 0}));
  REQUIRE_OK(mp.Reopen());
  found = mp.pool->FindByUuid(u);
  REQUIRE_OK(found);
  REQUIRE(found->size() == 2);
  REQUIRE(CodeOf(mp.pool->FindByUuid("not-a-uuid").status()) == Code::kInvalidArgument);
  // Renames keep the uuid slot.
  REQUIRE_OK(mp.pool->Rename("a", "b"));
  found = mp.pool->FindByUuid(u);
  REQUIRE_OK(found);
  REQUIRE(found->size() == 2);
  RequireClean(*mp.pool);
}

TEST_CASE("a wrong hidden-entry count is reported by check and corrected by a writer's walk") {
  MemPool mp;
  MakePool(mp, 3);
  REQUIRE_OK(mp.pool->CreateVolume(".build-x", 1 << 20, {}));
  auto info = mp.pool->Info();
  REQUIRE_OK(info);
  const uint64_t gen = info->generation;
  mp.pool.reset();

  // Too low: an open would miss the leftover. Check says so.
  EditSuperblock(mp, gen, [](uint8_t* p) { PutLE32(p + 108, 0); });
  REQUIRE_OK(mp.Reopen(/*read_only=*/true));
  auto r = mp.pool->Check();
  REQUIRE_OK(r);
  REQUIRE_FALSE(r->ok);
  INFO(r->ToJson());
  REQUIRE(r->ToJson().find("superblock counts 0 hidden entries, the entry tree holds 1") !=
          std::string::npos);

  // Too high: the walk that looks for them reaches the end, takes what it
  // found, and the writer commits the corrected count.
  mp.pool.reset();
  EditSuperblock(mp, gen, [](uint8_t* p) { PutLE32(p + 108, 3); });
  REQUIRE_OK(mp.Reopen(true));
  r = mp.pool->Check();
  REQUIRE_OK(r);
  REQUIRE_FALSE(r->ok);
  REQUIRE_OK(mp.Reopen());
  REQUIRE(Hidden(*mp.pool) == std::vector<std::string>{".build-x"});
  REQUIRE_OK(mp.pool->Commit());
  REQUIRE_OK(mp.Reopen());
  RequireClean(*mp.pool);

  // More hidden entries than entries: the superblock is refused.
  mp.pool.reset();
  info = [&] {
    REQUIRE_OK(mp.Reopen());
    auto i = mp.pool->Info();
    mp.pool.reset();
    return i;
  }();
  REQUIRE_OK(info);
  EditSuperblock(mp, info->generation, [](uint8_t* p) { PutLE32(p + 108, 100); });
  EditSuperblock(mp, info->generation - 1, [](uint8_t* p) { PutLE32(p + 108, 100); });
  auto st = mp.Reopen(true);
  REQUIRE(CodeOf(st) == Code::kCorruption);
  REQUIRE(st.message().find("more hidden entries than entries") != std::string::npos);
}

TEST_CASE("renaming a volume reads its family, not the table") {
  // The family index (volume part -> its entries) finds a volume's
  // snapshots; the old rename walked every entry record.
  MemPool mp;
  REQUIRE_OK(mp.Create(16384, 4096, 1 << 20, /*faulty=*/true));
  REQUIRE_OK(mp.pool->CreateVolume("w", 1 << 20, {}));
  REQUIRE_OK(mp.pool->CreateVolume("v", 1 << 20, {}));
  for (int i = 0; i < kSnaps; ++i) {
    REQUIRE_OK(mp.pool->Snapshot("v", SnapName(i), {}));
    if (i == 1000) REQUIRE_OK(mp.pool->Snapshot("w", "w@mid", {}));
  }
  REQUIRE_OK(mp.pool->Snapshot("w", "w@last", {}));
  REQUIRE_OK(mp.Reopen());
  const uint64_t before = mp.ctl->reads();
  REQUIRE_OK(mp.pool->Rename("w", "w2"));
  const uint64_t reads = mp.ctl->reads() - before;
  INFO("reads to rename a volume with 2 snapshots among " << kSnaps + 4 << " entries: " << reads);
  REQUIRE(reads <= 40);  // walking the entry records reads hundreds of leaves
  for (const char* n : {"w2", "w2@mid", "w2@last"}) REQUIRE_OK(mp.pool->Stat(n));
  for (const char* n : {"w", "w@mid", "w@last"}) {
    REQUIRE(CodeOf(mp.pool->Stat(n).status()) == Code::kNotFound);
  }
  // A volume whose name is a prefix of another's keeps its own family.
  REQUIRE_OK(mp.pool->CreateVolume("w2x", 1 << 20, {}));
  REQUIRE_OK(mp.pool->Snapshot("w2x", "w2x@a", {}));
  REQUIRE_OK(mp.pool->Rename("w2", "z"));
  REQUIRE_OK(mp.pool->Stat("w2x@a"));
  REQUIRE_OK(mp.pool->Stat("z@mid"));
  REQUIRE_OK(mp.Reopen());
  RequireClean(*mp.pool);
}

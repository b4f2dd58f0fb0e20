// Pool operations: lifecycle, volumes, snapshots, clones, rollback, delete,
// rename, resize, metadata, accounting, locking.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "block/passthrough_device.h"
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

void WriteAt(Pool& p, const std::string& vol, uint64_t block, const std::vector<uint8_t>& data) {
  auto v = p.OpenVolume(vol, false);
  REQUIRE_OK(v);
  REQUIRE_OK((*v)->Write(block * kBs, data));
}
}  // namespace

TEST_CASE("create, write, reopen, read back") {
  MemPool mp;
  REQUIRE_OK(mp.Create(256));
  REQUIRE_OK(mp.pool->CreateVolume("v", 1 << 20, {"a note", {"t1", "t2"}}));
  auto data = RandomBytes(64 * 1024, 1);
  WriteAt(*mp.pool, "v", 3, data);
  RequireClean(*mp.pool);
  REQUIRE_OK(mp.pool->Commit());
  REQUIRE_OK(mp.Reopen());
  auto all = ReadEntry(*mp.pool, "v");
  REQUIRE(std::equal(data.begin(), data.end(), all.begin() + 3 * kBs));
  REQUIRE(std::all_of(all.begin(), all.begin() + 3 * kBs, [](uint8_t c) { return c == 0; }));
  auto list = mp.pool->List();
  REQUIRE_OK(list);
  REQUIRE(list->size() == 1);
  REQUIRE((*list)[0].note == "a note");
  REQUIRE((*list)[0].tags == std::vector<std::string>{"t1", "t2"});
  REQUIRE((*list)[0].mapped_bytes == 64 * 1024);
  REQUIRE((*list)[0].exclusive_bytes == 64 * 1024);
  RequireClean(*mp.pool);
}

TEST_CASE("unflushed writes are dropped by a crash, flushed ones are not") {
  MemPool mp;
  REQUIRE_OK(mp.Create(256, kBs, 1 << 20, /*faulty=*/true));
  REQUIRE_OK(mp.pool->CreateVolume("v", 1 << 20, {}));
  auto v = mp.pool->OpenVolume("v", false);
  REQUIRE_OK(v);
  auto a = RandomBytes(kBs, 1), b = RandomBytes(kBs, 2);
  REQUIRE_OK((*v)->Write(0, a));
  REQUIRE_OK((*v)->Flush());
  REQUIRE_OK((*v)->Write(0, b));
  mp.ctl->CutPowerAt(mp.ctl->mutating_ops(), CutMode::kDropAll);
  REQUIRE(!(*v)->Flush().ok());
  v->reset();
  REQUIRE_OK(mp.Reopen());
  auto all = ReadEntry(*mp.pool, "v");
  REQUIRE(std::equal(a.begin(), a.end(), all.begin()));
  RequireClean(*mp.pool);
}

TEST_CASE("snapshots are immutable and O(1), clones are writable") {
  MemPool mp;
  REQUIRE_OK(mp.Create(2048));
  REQUIRE_OK(mp.pool->CreateVolume("v", 4 << 20, {}));
  auto d1 = RandomBytes(1 << 20, 1);
  WriteAt(*mp.pool, "v", 0, d1);
  REQUIRE_OK(mp.pool->Snapshot("v", "v@s1", {"first", {}}));
  auto used1 = mp.pool->Info()->used_bytes;
  auto d2 = RandomBytes(8 * kBs, 2);
  WriteAt(*mp.pool, "v", 10, d2);
  REQUIRE(ReadEntry(*mp.pool, "v@s1") == [&] {
    auto x = d1;
    x.resize(4 << 20);
    return x;
  }());
  // Snapshot device is read-only.
  auto sdev = mp.pool->OpenVolume("v@s1", true);
  REQUIRE_OK(sdev);
  REQUIRE(CodeOf((*sdev)->Write(0, d2)) == Code::kReadOnly);
  REQUIRE(CodeOf(mp.pool->OpenVolume("v@s1", false)) == Code::kReadOnly);
  // Clone of the snapshot: shares data, diverges on write.
  REQUIRE_OK(mp.pool->Clone("v@s1", "c", {}));
  WriteAt(*mp.pool, "c", 0, d2);
  auto c = ReadEntry(*mp.pool, "c");
  REQUIRE(std::equal(d2.begin(), d2.end(), c.begin()));
  REQUIRE(std::equal(d1.begin() + d2.size(), d1.end(), c.begin() + d2.size()));
  REQUIRE(std::equal(d1.begin(), d1.end(), ReadEntry(*mp.pool, "v@s1").begin()));
  RequireClean(*mp.pool);
  // Accounting: s1 shares most blocks.
  auto info = mp.pool->Stat("v@s1");
  REQUIRE_OK(info);
  REQUIRE(info->kind == EntryKind::kSnapshot);
  REQUIRE(info->read_only);
  REQUIRE(info->mapped_bytes == 1 << 20);
  REQUIRE(info->shared_bytes > 0);
  auto vinfo = mp.pool->Stat("v");
  REQUIRE(info->parent_uuid == vinfo->uuid);
  // Taking the snapshot cost a handful of metadata blocks, not 256 data blocks.
  REQUIRE(used1 < (256 + 40) * kBs);
  // An entry with an open device stays put (pool.h).
  REQUIRE(CodeOf(mp.pool->Delete("v@s1")) == Code::kBusy);
  sdev->reset();
  // Delete in any order; everything stays consistent, nothing leaks.
  REQUIRE_OK(mp.pool->Delete("v"));
  RequireClean(*mp.pool);
  REQUIRE_OK(mp.pool->Delete("v@s1"));
  RequireClean(*mp.pool);
  auto cc = ReadEntry(*mp.pool, "c");
  REQUIRE(cc == c);
  REQUIRE_OK(mp.pool->Delete("c"));
  RequireClean(*mp.pool);
  auto pinfo = mp.pool->Info();
  REQUIRE_OK(pinfo);
  // Only superblocks, space map, index and table remain.
  REQUIRE(pinfo->used_bytes <= 8 * kBs);
}

TEST_CASE("rollback restores the snapshot's content and size") {
  MemPool mp;
  REQUIRE_OK(mp.Create(1024));
  REQUIRE_OK(mp.pool->CreateVolume("v", 1 << 20, {}));
  auto d1 = RandomBytes(1 << 20, 1);
  WriteAt(*mp.pool, "v", 0, d1);
  REQUIRE_OK(mp.pool->Snapshot("v", "v@s", {}));
  WriteAt(*mp.pool, "v", 0, RandomBytes(1 << 19, 2));
  REQUIRE_OK(mp.pool->Resize("v", 2 << 20));
  REQUIRE_OK(mp.pool->Rollback("v", "s"));
  REQUIRE(ReadEntry(*mp.pool, "v") == d1);
  RequireClean(*mp.pool);
  REQUIRE(CodeOf(mp.pool->Rollback("v", "nope")) == Code::kNotFound);
}

TEST_CASE("rename carries snapshots, names are validated") {
  MemPool mp;
  REQUIRE_OK(mp.Create(256));
  REQUIRE_OK(mp.pool->CreateVolume("v", 1 << 20, {}));
  REQUIRE_OK(mp.pool->Snapshot("v", "v@a", {}));
  REQUIRE_OK(mp.pool->Snapshot("v", "v@b", {}));
  REQUIRE_OK(mp.pool->Rename("v", "w"));
  auto l = mp.pool->List();
  REQUIRE_OK(l);
  std::vector<std::string> names;
  for (auto& e : *l) names.push_back(e.name);
  REQUIRE(names == std::vector<std::string>{"w", "w@a", "w@b"});
  auto cheap = mp.pool->Names();
  REQUIRE_OK(cheap);
  REQUIRE(*cheap == names);
  REQUIRE_OK(mp.pool->Rename("w@a", "w@z"));
  REQUIRE(CodeOf(mp.pool->Rename("w@z", "x@z")) == Code::kInvalidArgument);
  REQUIRE(CodeOf(mp.pool->CreateVolume("w", 4096, {})) == Code::kAlreadyExists);
  REQUIRE(CodeOf(mp.pool->CreateVolume("bad name", 4096, {})) == Code::kInvalidArgument);
  REQUIRE(CodeOf(mp.pool->CreateVolume("a@b", 4096, {})) == Code::kInvalidArgument);
  REQUIRE(CodeOf(mp.pool->CreateVolume("odd", 100, {})) == Code::kInvalidArgument);
  REQUIRE(CodeOf(mp.pool->Snapshot("w", "other@s", {})) == Code::kInvalidArgument);
  REQUIRE(CodeOf(mp.pool->Clone("w", "c@x", {})) == Code::kInvalidArgument);
  REQUIRE(CodeOf(mp.pool->SetReadOnly("w@b", false)) == Code::kInvalidArgument);
  REQUIRE(CodeOf(mp.pool->Resize("w@b", 8192)) == Code::kInvalidArgument);
  REQUIRE(CodeOf(mp.pool->Delete("nope")) == Code::kNotFound);
  REQUIRE(ValidEntryName("a.b_c:d+e-f@G1"));
  REQUIRE(!ValidEntryName("a@b@c"));
  REQUIRE(!ValidEntryName("a/b"));
  REQUIRE_OK(mp.pool->SetMeta("w@b", {"n", {"x"}}));
  REQUIRE_OK(mp.Reopen());
  auto s = mp.pool->Stat("w@b");
  REQUIRE_OK(s);
  REQUIRE(s->note == "n");
  RequireClean(*mp.pool);
}

TEST_CASE("read-only volumes and pools refuse writes") {
  MemPool mp;
  REQUIRE_OK(mp.Create(256));
  REQUIRE_OK(mp.pool->CreateVolume("v", 1 << 20, {}));
  REQUIRE_OK(mp.pool->SetReadOnly("v", true));
  REQUIRE(CodeOf(mp.pool->OpenVolume("v", false)) == Code::kReadOnly);
  REQUIRE_OK(mp.pool->SetReadOnly("v", false));
  WriteAt(*mp.pool, "v", 0, RandomBytes(kBs, 3));
  REQUIRE_OK(mp.Reopen(/*read_only=*/true));
  REQUIRE(CodeOf(mp.pool->OpenVolume("v", false)) == Code::kReadOnly);
  REQUIRE(CodeOf(mp.pool->CreateVolume("w", 4096, {})) == Code::kReadOnly);
  auto all = ReadEntry(*mp.pool, "v");
  auto want = RandomBytes(kBs, 3);
  REQUIRE(std::equal(want.begin(), want.end(), all.begin()));
}

TEST_CASE("shrink frees the tail, zero writes and discards make holes") {
  MemPool mp;
  REQUIRE_OK(mp.Create(512));
  REQUIRE_OK(mp.pool->CreateVolume("v", 1 << 20, {}));
  WriteAt(*mp.pool, "v", 0, RandomBytes(1 << 20, 4));
  auto used = mp.pool->Info()->used_bytes;
  REQUIRE_OK(mp.pool->Resize("v", 1 << 19));
  REQUIRE_OK(mp.pool->Commit());
  REQUIRE(mp.pool->Info()->used_bytes <= used - (1 << 19) + 2 * kBs);
  REQUIRE_OK(mp.pool->Resize("v", 1 << 20));
  auto all = ReadEntry(*mp.pool, "v");
  REQUIRE(std::all_of(all.begin() + (1 << 19), all.end(), [](uint8_t c) { return c == 0; }));
  auto v = mp.pool->OpenVolume("v", false);
  REQUIRE_OK(v);
  REQUIRE_OK((*v)->Write(0, std::vector<uint8_t>(2 * kBs, 0)));
  REQUIRE_OK((*v)->Discard(4 * kBs, 4 * kBs));
  REQUIRE_OK((*v)->WriteZeroes(10 * kBs, kBs));
  auto ext = (*v)->AllocatedExtents(0, 1 << 20);
  REQUIRE_OK(ext);
  std::vector<Extent> want{{2 * kBs, 2 * kBs}, {8 * kBs, 2 * kBs}, {11 * kBs, (128 - 11) * kBs}};
  REQUIRE(*ext == want);
  RequireClean(*mp.pool);
}

TEST_CASE("a file pool grows on demand and a second opener gets Busy") {
  TempDir dir;
  std::string path = dir.file("pool.img");
  PoolCreateOptions o;
  o.size_bytes = 1 << 20;
  o.max_bytes = 64 << 20;
  auto p = Pool::Create(path, o);
  REQUIRE_OK(p);
  REQUIRE_OK((*p)->CreateVolume("v", 16 << 20, {}));
  WriteAt(**p, "v", 0, RandomBytes(8 << 20, 5));
  REQUIRE_OK((*p)->Commit());
  auto info = (*p)->Info();
  REQUIRE(info->size_bytes > (8 << 20));
  // Another process: Busy naming this pid.
  pid_t child = fork();
  if (child == 0) {
    auto q = Pool::Open(path, {});
    bool busy = !q.ok() && q.status().code() == Code::kBusy &&
                q.status().message().find("pid " + std::to_string(getppid())) != std::string::npos;
    _exit(busy ? 0 : 1);
  }
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  // Same process, second open: Busy too.
  auto q = Pool::Open(path, {});
  REQUIRE(CodeOf(q) == Code::kBusy);
  p->reset();
  auto r = Pool::Open(path, {});
  REQUIRE_OK(r);
  auto all = ReadEntry(**r, "v");
  auto want = RandomBytes(8 << 20, 5);
  REQUIRE(std::equal(want.begin(), want.end(), all.begin()));
  RequireClean(**r);
  auto vr = (*r)->Verify();
  REQUIRE_OK(vr);
  REQUIRE(vr->ok);
  REQUIRE(vr->blocks_checked == 2048);
}

TEST_CASE("larger physical block sizes work") {
  for (uint32_t bs : {16384u, 65536u}) {
    MemPool mp;
    REQUIRE_OK(mp.Create(256, bs));
    REQUIRE_OK(mp.pool->CreateVolume("v", 64 * bs, {}));
    auto v = mp.pool->OpenVolume("v", false);
    REQUIRE_OK(v);
    REQUIRE((*v)->block_size() == bs);
    auto d = RandomBytes(8 * bs, bs);
    REQUIRE_OK((*v)->Write(2 * bs, d));
    v->reset();
    REQUIRE_OK(mp.pool->Snapshot("v", "v@s", {}));
    REQUIRE_OK(mp.Reopen());
    auto all = ReadEntry(*mp.pool, "v@s");
    REQUIRE(std::equal(d.begin(), d.end(), all.begin() + 2 * bs));
    RequireClean(*mp.pool);
  }
}

TEST_CASE("a long transaction commits on its own at request boundaries") {
  // cache_bytes 0: the per-transaction state limit is its floor (4096
  // blocks), so 6,000 random single-block writes must auto-commit.
  MemPool mp;
  REQUIRE_OK(mp.Create(16384, kBs, /*cache=*/0));
  REQUIRE_OK(mp.pool->CreateVolume("v", 8192 * kBs, {}));
  auto g0 = mp.pool->Info()->generation;
  auto v = mp.pool->OpenVolume("v", false);
  REQUIRE_OK(v);
  std::vector<uint8_t> model(8192 * kBs, 0);
  uint64_t x = 12345;
  for (int i = 0; i < 6000; ++i) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    uint64_t blk = (x >> 20) % 8192;
    auto d = RandomBytes(kBs, x);
    REQUIRE_OK((*v)->Write(blk * kBs, d));
    std::copy(d.begin(), d.end(), model.begin() + blk * kBs);
  }
  REQUIRE(mp.pool->Info()->generation > g0);
  RequireClean(*mp.pool);
  std::vector<uint8_t> all(model.size());
  REQUIRE_OK((*v)->Read(0, all));
  REQUIRE(all == model);
  v->reset();
  REQUIRE_OK(mp.Reopen());
  REQUIRE(ReadEntry(*mp.pool, "v") == model);
  RequireClean(*mp.pool);
}

TEST_CASE("writes below and between mapped blocks, and rewrites, in one transaction") {
  // What a file system build does: mkfs maps scattered blocks, then data
  // fills in ascending below and between them, and metadata blocks are
  // rewritten (the tree's recent-leaf path takes all three).
  MemPool mp;
  REQUIRE_OK(mp.Create(8192));
  REQUIRE_OK(mp.pool->CreateVolume("v", 4096 * kBs, {}));
  auto v = mp.pool->OpenVolume("v", false);
  REQUIRE_OK(v);
  std::vector<uint8_t> model(4096 * kBs, 0);
  auto put = [&](uint64_t blk, uint64_t n, uint64_t seed) {
    auto d = RandomBytes(n * kBs, seed);
    REQUIRE_OK((*v)->Write(blk * kBs, d));
    std::copy(d.begin(), d.end(), model.begin() + long(blk * kBs));
  };
  for (uint64_t blk : {0, 1, 1024, 2048, 3072, 4095}) put(blk, 1, blk);  // "mkfs"
  for (uint64_t blk = 2; blk < 3000; blk += 3) {
    put(blk, 3, blk + 10000);                      // data, ascending
    if (blk % 99 == 2) put(1, 1, blk + 20000);     // metadata rewritten
    if (blk % 301 == 2) put(blk, 1, blk + 30000);  // data rewritten
  }
  auto list = mp.pool->List();
  REQUIRE_OK(list);
  CHECK((*list)[0].mapped_bytes == 3004 * kBs);  // blocks 0-3001, 3072 and 4095
  RequireClean(*mp.pool);
  std::vector<uint8_t> all(model.size());
  REQUIRE_OK((*v)->Read(0, all));
  REQUIRE(all == model);
  v->reset();
  REQUIRE_OK(mp.pool->Commit());
  REQUIRE_OK(mp.Reopen());
  REQUIRE(ReadEntry(*mp.pool, "v") == model);
  RequireClean(*mp.pool);
}

TEST_CASE("same-stored compares blocks with an entry by checksum, per block") {
  MemPool mp;
  REQUIRE_OK(mp.Create(256));
  REQUIRE_OK(mp.pool->CreateVolume("v", 1 << 20, {}));
  auto data = RandomBytes(8 * kBs, 21);
  WriteAt(*mp.pool, "v", 4, data);  // blocks 4..11 mapped
  REQUIRE_OK(mp.pool->Snapshot("v", "v@s", {}));
  // The same bytes at the same place match; they do in the snapshot too
  // (its blocks are the volume's, shared).
  for (const std::string name : {"v", "v@s"}) {
    auto same = mp.pool->SameStored(name, 4 * kBs, data);
    REQUIRE_OK(same);
    REQUIRE(*same == std::vector<uint8_t>(8, 1));
  }
  // One byte changed in block 6 (the third): only that block differs.
  auto changed = data;
  changed[2 * kBs + 100] ^= 1;
  auto same = mp.pool->SameStored("v", 4 * kBs, changed);
  REQUIRE_OK(same);
  REQUIRE(*same == std::vector<uint8_t>{1, 1, 0, 1, 1, 1, 1, 1});
  // The same bytes one block further on: every block differs (other
  // content there, or unmapped).
  same = mp.pool->SameStored("v", 5 * kBs, data);
  REQUIRE_OK(same);
  REQUIRE(*same == std::vector<uint8_t>(8, 0));
  // Unmapped blocks never match, zeros included.
  same = mp.pool->SameStored("v", 100 * kBs, std::vector<uint8_t>(2 * kBs, 0));
  REQUIRE_OK(same);
  REQUIRE(*same == std::vector<uint8_t>(2, 0));
  // After a copy-on-write rewrite of block 4, the volume's block 4 has new
  // content; the snapshot keeps the old.
  auto fresh = RandomBytes(kBs, 22);
  WriteAt(*mp.pool, "v", 4, fresh);
  same = mp.pool->SameStored("v", 4 * kBs, fresh);
  REQUIRE_OK(same);
  REQUIRE(*same == std::vector<uint8_t>{1});
  same = mp.pool->SameStored("v@s", 4 * kBs, fresh);
  REQUIRE_OK(same);
  REQUIRE(*same == std::vector<uint8_t>{0});
  REQUIRE(CodeOf(mp.pool->SameStored("nope", 0, fresh)) == Code::kNotFound);
  REQUIRE(CodeOf(mp.pool->SameStored("v", 1, fresh)) == Code::kInvalidArgument);
  REQUIRE(CodeOf(mp.pool->SameStored("v", (1 << 20) - kBs, data)) == Code::kOutOfRange);
}

TEST_CASE("stored runs locate verified data in the backing file") {
  TempDir dir;
  std::string path = dir.file("pool.img");
  PoolCreateOptions o;
  o.size_bytes = 32 << 20;
  auto p = Pool::Create(path, o);
  REQUIRE_OK(p);
  Pool& pool = **p;
  REQUIRE(pool.StorePath() == path);
  REQUIRE_OK(pool.CreateVolume("v", 8 << 20, {}));
  auto data = RandomBytes(16 * kBs, 9);
  WriteAt(pool, "v", 10, data);                                // blocks 10..25
  WriteAt(pool, "v", 100, RandomBytes(kBs, 10));               // block 100
  WriteAt(pool, "v", 300, std::vector<uint8_t>(3 * kBs, 0));   // zero writes: holes
  REQUIRE_OK(pool.Snapshot("v", "v@s", {}));
  WriteAt(pool, "v", 12, RandomBytes(kBs, 11));  // CoW: v's block 12 moves
  REQUIRE_OK(pool.Commit());

  for (const std::string name : {"v", "v@s"}) {
    auto vol = pool.OpenVolume(name, true);
    REQUIRE_OK(vol);
    auto want = ReadAll(**vol);
    auto runs = pool.StoredRuns(name, 0, 8 << 20);
    REQUIRE_OK(runs);
    // Rebuild the entry from the backing file by store offset.
    std::vector<uint8_t> got(8 << 20, 0);
    uint64_t mapped = 0, prev_end = 0;
    FILE* f = std::fopen(path.c_str(), "rb");
    REQUIRE(f != nullptr);
    for (const StoredRun& r : *runs) {
      REQUIRE(r.offset >= prev_end);  // in order, no overlap
      prev_end = r.offset + r.length;
      REQUIRE(r.length % kBs == 0);
      REQUIRE(std::fseek(f, long(r.store_offset), SEEK_SET) == 0);
      REQUIRE(std::fread(got.data() + r.offset, 1, r.length, f) == r.length);
      if (r.zero) REQUIRE(std::all_of(got.begin() + long(r.offset),
                                      got.begin() + long(r.offset + r.length),
                                      [](uint8_t b) { return b == 0; }));
      mapped += r.length;
    }
    std::fclose(f);
    REQUIRE(got == want);
    REQUIRE(mapped == 17 * kBs);
    // A window returns only what lies inside it.
    auto part = pool.StoredRuns(name, 11 * kBs, 2 * kBs);
    REQUIRE_OK(part);
    uint64_t n = 0;
    for (const StoredRun& r : *part) {
      REQUIRE(r.offset >= 11 * kBs);
      REQUIRE(r.offset + r.length <= 13 * kBs);
      n += r.length;
    }
    REQUIRE(n == 2 * kBs);
  }
  REQUIRE(CodeOf(pool.StoredRuns("nope", 0, kBs)) == Code::kNotFound);
  REQUIRE(CodeOf(pool.StoredRuns("v", 1, kBs)) == Code::kInvalidArgument);

  // A flipped byte in a data block: Corruption naming the volume and block.
  auto runs = pool.StoredRuns("v", 100 * kBs, kBs);
  REQUIRE_OK(runs);
  REQUIRE(runs->size() == 1);
  const uint64_t at = (*runs)[0].store_offset + 77;
  p->reset();
  {
    FILE* f = std::fopen(path.c_str(), "r+b");
    REQUIRE(f != nullptr);
    REQUIRE(std::fseek(f, long(at), SEEK_SET) == 0);
    int c = std::fgetc(f);
    REQUIRE(std::fseek(f, long(at), SEEK_SET) == 0);
    std::fputc(c ^ 0x40, f);
    std::fclose(f);
  }
  auto q = Pool::Open(path, {});
  REQUIRE_OK(q);
  auto bad = (*q)->StoredRuns("v", 0, 8 << 20);
  REQUIRE(CodeOf(bad) == Code::kCorruption);
  REQUIRE(bad.status().message().find("logical block 100") != std::string::npos);
  REQUIRE_OK((*q)->StoredRuns("v", 0, 100 * kBs));  // the damage is outside this window
}

TEST_CASE("a pool over a device has no local store path") {
  MemPool mp;
  REQUIRE_OK(mp.Create(256));
  REQUIRE(mp.pool->StorePath().empty());
}

TEST_CASE("what a writer killed before its commit wrote is punched at the next open") {
  TempDir dir;
  std::string path = dir.file("pool.img");
  auto on_disk = [&] {
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    return uint64_t(st.st_blocks) * 512;
  };
  {
    PoolCreateOptions o;
    o.size_bytes = 64 << 20;
    auto p = Pool::Create(path, o);
    REQUIRE_OK(p);
    REQUIRE_OK((*p)->CreateVolume("v", 32 << 20, {}));
  }
  const uint64_t empty = on_disk();
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    // The killed writer: data reaches the file, no commit, no destructors.
    auto p = Pool::Open(path, {});
    if (!p.ok()) ::_exit(2);
    auto v = (*p)->OpenVolume("v", false);
    if (!v.ok()) ::_exit(3);
    auto data = RandomBytes(16 << 20, 9);
    ::_exit((*v)->Write(0, data).ok() ? 0 : 4);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  REQUIRE(on_disk() >= empty + (15u << 20));
  // A reader changes nothing; the next writer punches the free runs.
  {
    PoolOpenOptions ro;
    ro.read_only = true;
    auto p = Pool::Open(path, ro);
    REQUIRE_OK(p);
    CHECK(on_disk() >= empty + (15u << 20));
  }
  auto p = Pool::Open(path, {});
  REQUIRE_OK(p);
  CHECK(on_disk() < empty + (1u << 20));
  auto st = (*p)->Stat("v");
  REQUIRE_OK(st);
  CHECK(st->mapped_bytes == 0);
  RequireClean(**p);
  // Space is allocatable and used again.
  WriteAt(**p, "v", 0, RandomBytes(1 << 20, 10));
  RequireClean(**p);
}

TEST_CASE("a writer's open punches short free runs too, so the next open has nothing to scan") {
  // Thousands of commits free single blocks between used ones; the commit
  // leaves runs under 64 KiB allocated. Here: every other data block of
  // 24 MiB freed. The open that finds the excess must leave the file near
  // its used blocks, or every later open scans the space map and punches
  // the same runs again (it did: 359 fallocates per `snapshot create` on
  // a pool of 10,000 snapshots).
  TempDir dir;
  std::string path = dir.file("pool.img");
  constexpr uint64_t kData = 24 << 20, kBs = 4096;
  {
    PoolCreateOptions o;
    o.size_bytes = 64 << 20;
    auto p = Pool::Create(path, o);
    REQUIRE_OK(p);
    REQUIRE_OK((*p)->CreateVolume("v", kData, {}));
    WriteAt(**p, "v", 0, RandomBytes(kData, 5));
    auto v = (*p)->OpenVolume("v", false);
    REQUIRE_OK(v);
    for (uint64_t b = 0; b < kData / kBs; b += 2) REQUIRE_OK((*v)->Discard(b * kBs, kBs));
    REQUIRE_OK((*v)->Flush());
  }
  uint64_t unused_before = 0;
  {
    PoolOpenOptions ro;
    ro.read_only = true;
    auto p = Pool::Open(path, ro);
    REQUIRE_OK(p);
    auto i = (*p)->Info();
    REQUIRE_OK(i);
    REQUIRE(i->host_known);
    unused_before = i->host_unused_bytes;
  }
  INFO("allocated beyond the used blocks before the writer's open: " << unused_before);
  REQUIRE(unused_before >= kData / 2 - (1 << 20));
  auto p = Pool::Open(path, {});
  REQUIRE_OK(p);
  auto i = (*p)->Info();
  REQUIRE_OK(i);
  INFO("after: " << i->host_unused_bytes);
  CHECK(i->host_unused_bytes < (1u << 20));
  RequireClean(**p);
}

TEST_CASE("data written and discarded in one transaction leaves the file a commit later") {
  // A failed edit's data or a file written and removed before a flush: the
  // blocks never had a committed count, yet their bytes are on the store.
  // The data path's commit keeps them for reuse; the next commit (or the
  // close) gives back what nobody took.
  TempDir dir;
  std::string path = dir.file("pool.img");
  auto on_disk = [&] {
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    return uint64_t(st.st_blocks) * 512;
  };
  PoolCreateOptions o;
  o.size_bytes = 64 << 20;
  auto p = Pool::Create(path, o);
  REQUIRE_OK(p);
  REQUIRE_OK((*p)->CreateVolume("v", 32 << 20, {}));
  const uint64_t empty = on_disk();
  auto v = (*p)->OpenVolume("v", false);
  REQUIRE_OK(v);
  auto data = RandomBytes(8 << 20, 5);
  REQUIRE_OK((*v)->Write(0, data));
  REQUIRE(on_disk() >= empty + (8u << 20));
  REQUIRE_OK((*v)->Discard(0, 8 << 20));
  REQUIRE_OK((*v)->Flush());
  CHECK(on_disk() >= empty + (8u << 20));  // kept for the next writes
  REQUIRE_OK((*v)->Write(16 << 20, std::span(data).first(4096)));
  REQUIRE_OK((*v)->Flush());
  CHECK(on_disk() < empty + (1u << 20));   // a commit later: given back
  v->reset();
  RequireClean(**p);
  auto st = (*p)->Stat("v");
  REQUIRE_OK(st);
  CHECK(st->mapped_bytes == 4096);
  // The close gives back what the last commit freed.
  auto v2 = (*p)->OpenVolume("v", false);
  REQUIRE_OK(v2);
  REQUIRE_OK((*v2)->Write(0, data));
  REQUIRE_OK((*v2)->Flush());
  REQUIRE_OK((*v2)->Discard(0, 8 << 20));
  REQUIRE_OK((*v2)->Flush());
  REQUIRE(on_disk() >= empty + (8u << 20));
  v2->reset();
  p->reset();
  CHECK(on_disk() < empty + (1u << 20));
}

namespace {
// Counts the discards the pool sends its store.
class DiscardCounter final : public PassthroughDevice {
 public:
  DiscardCounter(std::unique_ptr<BlockDevice> inner, std::shared_ptr<uint64_t> bytes)
      : PassthroughDevice(std::move(inner)), bytes_(std::move(bytes)) {}

 protected:
  Status DoDiscard(uint64_t offset, uint64_t length) override {
    *bytes_ += length;
    return PassthroughDevice::DoDiscard(offset, length);
  }

 private:
  std::shared_ptr<uint64_t> bytes_;
};

// A 96 MiB pool in memory whose discards are counted, with a 32 MiB
// volume "v" open for writing.
struct CountedPool {
  std::shared_ptr<uint64_t> discarded = std::make_shared<uint64_t>(0);
  std::unique_ptr<Pool> pool;
  std::unique_ptr<BlockDevice> v;

  explicit CountedPool(size_t cache_bytes) {
    auto storage = std::make_shared<MemStorage>();
    storage->block_size = 4096;
    storage->block_count = (96 << 20) / 4096;
    PoolCreateOptions o;
    o.size_bytes = 96 << 20;
    o.cache_bytes = cache_bytes;
    auto p = Pool::Create(MakeDeviceStore(std::make_unique<DiscardCounter>(
                              std::make_unique<MemDevice>(storage), discarded)),
                          o);
    REQUIRE_OK(p);
    pool = std::move(p).value();
    REQUIRE_OK(pool->CreateVolume("v", 32 << 20, {}));
    auto d = pool->OpenVolume("v", false);
    REQUIRE_OK(d);
    v = std::move(d).value();
  }
};
}  // namespace

TEST_CASE("a rewrite takes the blocks the last commit freed instead of discarding them") {
  // Copy-on-write moves every rewritten block. Punching the old copy at
  // each commit and allocating a new one made a pool file on ext4 punch
  // and reallocate the same bytes on every pass (a third of a served
  // volume's sequential write time); the freed run is reused instead.
  CountedPool cp(64ull << 20);
  std::vector<uint8_t> last;
  for (int pass = 0; pass < 6; ++pass) {
    last = RandomBytes(16 << 20, 100 + pass);
    REQUIRE_OK(cp.v->Write(0, last));
    REQUIRE_OK(cp.v->Flush());
  }
  CHECK(*cp.discarded == 0);
  auto all = ReadEntry(*cp.pool, "v");
  REQUIRE(std::equal(last.begin(), last.end(), all.begin()));
  // Deleting the volume is an entry operation: its space goes back at once.
  cp.v.reset();
  REQUIRE_OK(cp.pool->Delete("v"));
  CHECK(*cp.discarded >= (16u << 20));
  RequireClean(*cp.pool);
}

TEST_CASE("a rewrite stream cut by the transaction bound, then a short commit, keeps its freed runs") {
  // A 1 GiB rewrite over NBD commits at the transaction bound every ~500
  // MiB and ends with a flush that commits a few blocks. That short commit
  // took almost nothing from the runs the stream had freed, so it punched
  // them, and the next pass allocated the same bytes of the pool file again.
  CountedPool cp(1 << 20);  // a bound of 4096 block states: a commit every ~8 MiB rewritten
  std::vector<uint8_t> last;
  const std::vector<uint8_t> small = RandomBytes(4096, 7);
  for (int pass = 0; pass < 5; ++pass) {
    last = RandomBytes(20 << 20, 200 + pass);
    for (size_t off = 0; off < last.size(); off += 1 << 20) {
      REQUIRE_OK(cp.v->Write(off, std::span<const uint8_t>(last).subspan(off, 1 << 20)));
    }
    REQUIRE_OK(cp.v->Flush());
    REQUIRE_OK(cp.v->Write(24 << 20, small));  // the short commit
    REQUIRE_OK(cp.v->Flush());
  }
  CHECK(*cp.discarded == 0);
  auto all = ReadEntry(*cp.pool, "v");
  REQUIRE(std::equal(last.begin(), last.end(), all.begin()));
  REQUIRE(std::equal(small.begin(), small.end(), all.begin() + (24 << 20)));
  // Closing gives back what was kept: about one cut of the stream.
  cp.v.reset();
  cp.pool.reset();
  CHECK(*cp.discarded >= (4u << 20));
}

TEST_CASE("freed space goes back to the file system, shared blocks stay") {
  TempDir dir;
  std::string path = dir.file("pool.img");
  auto on_disk = [&] {
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    return uint64_t(st.st_blocks) * 512;
  };
  PoolCreateOptions o;
  o.size_bytes = 64 << 20;
  auto p = Pool::Create(path, o);
  REQUIRE_OK(p);
  Pool& pool = **p;
  REQUIRE_OK(pool.CreateVolume("v", 32 << 20, {}));
  auto data = RandomBytes(16 << 20, 21);
  WriteAt(pool, "v", 0, data);
  REQUIRE_OK(pool.Snapshot("v", "v@s", {}));
  const uint64_t full = on_disk();
  REQUIRE(full >= (16u << 20));
  // The volume goes, its snapshot holds every block: nothing is released.
  REQUIRE_OK(pool.Delete("v"));
  REQUIRE(on_disk() + (1 << 20) >= full);
  REQUIRE(ReadEntry(pool, "v@s") == [&] {
    auto all = data;
    all.resize(32 << 20, 0);
    return all;
  }());
  // A clone, then its discard of half: still shared with the snapshot.
  REQUIRE_OK(pool.Clone("v@s", "c", {}));
  {
    auto c = pool.OpenVolume("c", false);
    REQUIRE_OK(c);
    REQUIRE_OK((*c)->Discard(0, 8 << 20));
    REQUIRE_OK((*c)->Flush());
  }
  REQUIRE(on_disk() + (1 << 20) >= full);
  // The last holder of the first half goes: that half is released; the
  // second half, still in the clone, stays readable.
  REQUIRE_OK(pool.Delete("v@s"));
  REQUIRE(on_disk() + (7 << 20) <= full);
  auto c = ReadEntry(pool, "c");
  REQUIRE(std::equal(data.begin() + (8 << 20), data.end(), c.begin() + (8 << 20)));
  REQUIRE(std::all_of(c.begin(), c.begin() + (8 << 20), [](uint8_t b) { return b == 0; }));
  RequireClean(pool);
  REQUIRE_OK(pool.Delete("c"));
  REQUIRE(on_disk() < (2u << 20));
  RequireClean(pool);
  // Freed blocks are reused: writing again works and reads back.
  REQUIRE_OK(pool.CreateVolume("w", 16 << 20, {}));
  WriteAt(pool, "w", 0, data);
  p->reset();
  auto q = Pool::Open(path, {});
  REQUIRE_OK(q);
  auto w = ReadEntry(**q, "w");
  REQUIRE(std::equal(data.begin(), data.end(), w.begin()));
  RequireClean(**q);
  auto vr = (*q)->Verify();
  REQUIRE_OK(vr);
  REQUIRE(vr->ok);
}

TEST_CASE("a store is a BlockDevice: its checks, and the device's size and zero-copy path") {
  auto storage = std::make_shared<MemStorage>();
  storage->block_size = 4096;
  storage->block_count = 16;
  std::unique_ptr<Store> store = MakeDeviceStore(std::make_unique<MemDevice>(storage));
  BlockDevice& dev = *store;  // usable wherever a BlockDevice is
  REQUIRE(dev.block_size() == 4096);
  REQUIRE(store->Size() == 16 * 4096);
  std::vector<uint8_t> buf(4096);
  REQUIRE(CodeOf(dev.Read(100, buf)) == Code::kInvalidArgument);
  REQUIRE(CodeOf(dev.Write(16 * 4096, buf)) == Code::kOutOfRange);
  std::vector<uint8_t> data = RandomBytes(4096, 4);
  const std::vector<uint8_t> copy = data;
  REQUIRE_OK(dev.WriteBuffer(4096, data));
  REQUIRE_OK(dev.Read(4096, buf));
  REQUIRE(buf == copy);
  // Growing past the device is NoSpace; the size is the device's.
  REQUIRE(CodeOf(store->Resize(32 * 4096)) == Code::kNoSpace);
  REQUIRE(dev.block_count() == 16);
}

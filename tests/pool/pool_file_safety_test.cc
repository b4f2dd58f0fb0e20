// Pool files on a shared directory: the holder note never follows a link, a
// failed or concurrent create leaves nothing behind and overwrites nothing,
// and a volume write racing a resize stays within the volume.
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <thread>

#include "pool_check.h"
#include "pool_test_util.h"

using namespace stack;
using namespace stack::pool;
using namespace stack::pool::testing;
using stack::testing::CodeOf;
using stack::testing::RandomBytes;
using stack::testing::TempDir;

namespace {

constexpr uint32_t kBs = 4096;

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::vector<std::string> Listing(const TempDir& dir) {
  std::vector<std::string> names;
  for (auto& e : std::filesystem::directory_iterator(dir.path())) {
    names.push_back(e.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace

TEST_CASE("a symlink or hard link planted at <pool>.holder is never written through") {
  TempDir dir;
  const std::string pool = dir.file("p.pool");
  const std::string victim = dir.file("victim");
  const std::string linked = dir.file("linked");
  {
    std::ofstream(victim) << "precious\n";
    std::ofstream(linked) << "also precious\n";
  }
  REQUIRE(::symlink(victim.c_str(), (pool + ".holder").c_str()) == 0);
  PoolCreateOptions co;
  co.size_bytes = 1 << 20;
  {
    auto p = Pool::Create(pool, co);
    REQUIRE_OK(p);
    REQUIRE(Slurp(victim) == "precious\n");
    struct stat st {};
    REQUIRE(::lstat((pool + ".holder").c_str(), &st) == 0);
    REQUIRE(S_ISREG(st.st_mode));
    REQUIRE((st.st_mode & 0777) == 0644);
    REQUIRE(Slurp(pool + ".holder").rfind("pid " + std::to_string(::getpid()), 0) == 0);
  }
  // The same through a hard link, on open.
  REQUIRE(::link(linked.c_str(), (pool + ".holder").c_str()) == 0);
  {
    auto p = Pool::Open(pool, {});
    REQUIRE_OK(p);
    REQUIRE(Slurp(linked) == "also precious\n");
    REQUIRE(Slurp(pool + ".holder").rfind("pid ", 0) == 0);
  }
  REQUIRE(Slurp(victim) == "precious\n");
  REQUIRE(Slurp(linked) == "also precious\n");
}

TEST_CASE("a failed pool create leaves no file behind, a retry succeeds") {
  TempDir dir;
  const std::string pool = dir.file("p.pool");
  PoolCreateOptions bad_bs;
  bad_bs.block_size = 3000;
  REQUIRE(CodeOf(Pool::Create(pool, bad_bs)) == Code::kInvalidArgument);
  PoolCreateOptions small_max;
  small_max.size_bytes = 4 << 20;
  small_max.max_bytes = 1 << 20;
  auto r = Pool::Create(pool, small_max);
  REQUIRE(CodeOf(r) == Code::kInvalidArgument);
  REQUIRE(r.status().message().find("below the initial size") != std::string::npos);
  PoolCreateOptions too_small;
  too_small.size_bytes = 8 * kBs;
  REQUIRE(CodeOf(Pool::Create(pool, too_small)) == Code::kInvalidArgument);
  REQUIRE(Listing(dir).empty());
  PoolCreateOptions ok;
  ok.size_bytes = 1 << 20;
  {
    auto p = Pool::Create(pool, ok);
    REQUIRE_OK(p);
    REQUIRE((*p)->StorePath() == pool);
  }
  REQUIRE(Listing(dir) == std::vector<std::string>{"p.pool"});  // no temp, no holder
  REQUIRE(CodeOf(Pool::Create(pool, ok)) == Code::kAlreadyExists);
}

TEST_CASE("a create racing another create never overwrites it") {
  // The path is taken between our check and our rename: the rename must
  // refuse, keep the other file, and remove our temporary file.
  TempDir dir;
  const std::string pool = dir.file("p.pool");
  auto store = CreateFileStore(pool, 1 << 20);
  REQUIRE_OK(store);
  REQUIRE((*store)->local_path() != pool);
  { std::ofstream(pool) << "someone else's pool\n"; }
  PoolCreateOptions o;
  o.size_bytes = 1 << 20;
  Store* raw = store->get();
  auto p = Pool::Create(std::move(*store), o);
  REQUIRE_OK(p);
  REQUIRE(CodeOf(raw->Publish()) == Code::kAlreadyExists);
  REQUIRE(Slurp(pool) == "someone else's pool\n");
  p->reset();
  REQUIRE(Listing(dir) == std::vector<std::string>{"p.pool"});
}

TEST_CASE("a write of the last block racing a shrink and grow stays inside the volume") {
  // Bounds are checked under the lock that performs the write: before, a
  // write checked against the old size could land after the shrink and
  // leave a block mapped beyond the volume's end.
  MemPool mp;
  REQUIRE_OK(mp.Create(2048));
  constexpr uint64_t kBlocks = 16;
  REQUIRE_OK(mp.pool->CreateVolume("v", kBlocks * kBs, {}));
  auto dev = mp.pool->OpenVolume("v", false);
  REQUIRE_OK(dev);
  const auto data = RandomBytes(kBs, 7);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> writes_ok{0}, writes_refused{0};
  std::string writer_error;
  std::thread writer([&] {
    while (!stop.load()) {
      Status st = (*dev)->Write((kBlocks - 1) * kBs, data);
      if (st.ok()) {
        ++writes_ok;
      } else if (st.code() == Code::kOutOfRange) {
        ++writes_refused;
      } else {
        writer_error = st.ToString();  // read after join (Catch2 asserts on one thread)
        return;
      }
    }
  });
  // A failed REQUIRE below unwinds through here: stop and join first.
  struct Joiner {
    std::atomic<bool>& stop;
    std::thread& t;
    ~Joiner() {
      stop = true;
      if (t.joinable()) t.join();
    }
  } joiner{stop, writer};
  // Each round: shrink (the writer's last block is now past the end),
  // check while shrunk (a block written past the end shows as "mapped
  // beyond its size"), grow back. yield() only lets the writer in between;
  // no timing is relied on, the number of rounds makes the interleaving
  // that used to fail (4 in 3,000 in the report; without the fix this test
  // failed by round 15 and 70 in two runs) all but certain.
  for (int i = 0; i < 1000; ++i) {
    REQUIRE_OK(mp.pool->Resize("v", (kBlocks - 1) * kBs));
    std::this_thread::yield();
    {
      auto rep = mp.pool->Check();
      REQUIRE_OK(rep);
      INFO("round " << i << ": " << rep->ToJson());
      REQUIRE(rep->ok);
    }
    REQUIRE_OK(mp.pool->Resize("v", kBlocks * kBs));
    std::this_thread::yield();
  }
  stop = true;
  writer.join();
  REQUIRE(writer_error == "");
  WARN("writes: " << writes_ok << " done, " << writes_refused << " refused (past the end)");
  RequireClean(*mp.pool);
  dev->reset();
  REQUIRE_OK(mp.Reopen());
  RequireClean(*mp.pool);
}

// Pool files on a shared directory: the holder note never follows a link, a
// failed or concurrent create leaves nothing behind and overwrites nothing.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

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

using ::stack::testing::Slurp;

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
    REQUIRE(Slurp(pool + ".holder").rfind("a process (pid " + std::to_string(::getpid()) + ") on ",
                                         0) == 0);
  }
  // The same through a hard link, on open.
  REQUIRE(::link(linked.c_str(), (pool + ".holder").c_str()) == 0);
  SetLockHolderName("stack test\nline");  // named, and kept to one line
  {
    auto p = Pool::Open(pool, {});
    REQUIRE_OK(p);
    REQUIRE(Slurp(linked) == "also precious\n");
    const std::string note = Slurp(pool + ".holder");
    REQUIRE(note.rfind("stack test?line (pid ", 0) == 0);
    REQUIRE(note.find(" UTC\n") == note.size() - 5);
  }
  SetLockHolderName("a process");
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

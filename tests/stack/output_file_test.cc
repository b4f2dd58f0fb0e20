#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "stack/output_file.h"
#include "stack/sizes.h"
#include "test_util.h"

using namespace stack;
using namespace stack::compose;
using stack::testing::CodeOf;
using stack::testing::Slurp;
namespace fs = std::filesystem;

namespace {

struct Dir {
  stack::testing::TempDir tmp;
  const fs::path& path = tmp.path();
  std::vector<std::string> Names() const {
    std::vector<std::string> n;
    for (auto& e : fs::directory_iterator(path)) n.push_back(e.path().filename().string());
    std::sort(n.begin(), n.end());
    return n;
  }
};

void Put(const fs::path& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }

void WriteFd(int fd, const std::string& s) {
  REQUIRE(::write(fd, s.data(), s.size()) == static_cast<ssize_t>(s.size()));
}

}  // namespace

TEST_CASE("OutputFile publishes only on Commit") {
  Dir d;
  const fs::path target = d.path / "out.img";
  {
    auto f = OutputFile::Create(target.string());
    REQUIRE(f.ok());
    CHECK(fs::path((*f)->temp_path()).parent_path() == d.path);
    CHECK(fs::path((*f)->temp_path()).filename().string().rfind(".out.img.stack-tmp-", 0) == 0);
    WriteFd((*f)->fd(), "half");
    CHECK_FALSE(fs::exists(target));
    struct stat st {};
    REQUIRE(::stat((*f)->temp_path().c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);  // nobody reads a half-written file
  }
  CHECK(d.Names().empty());  // dropped without Commit: the temporary file is gone
  OutputFileOptions o;
  o.mode = 0640;
  o.apply_umask = false;
  auto f = OutputFile::Create(target.string(), o);
  REQUIRE(f.ok());
  WriteFd((*f)->fd(), "whole");
  REQUIRE((*f)->Commit().ok());
  CHECK(Slurp(target) == "whole");
  CHECK((fs::status(target).permissions() & fs::perms::all) ==
        (fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read));
  CHECK(d.Names() == std::vector<std::string>{"out.img"});
}

TEST_CASE("OutputFile keeps an existing target until a successful Commit") {
  Dir d;
  const fs::path target = d.path / "out.img";
  Put(target, "old");
  CHECK(CodeOf(OutputFile::Create(target.string())) == Code::kAlreadyExists);
  OutputFileOptions o;
  o.overwrite = true;
  {
    auto f = OutputFile::Create(target.string(), o);
    REQUIRE(f.ok());
    WriteFd((*f)->fd(), "new but failed");
  }
  CHECK(Slurp(target) == "old");
  CHECK(d.Names() == std::vector<std::string>{"out.img"});
  o.sync = true;
  auto f = OutputFile::Create(target.string(), o);
  REQUIRE(f.ok());
  WriteFd((*f)->fd(), "new");
  REQUIRE((*f)->Commit().ok());
  CHECK(Slurp(target) == "new");
}

TEST_CASE("OutputFile does not clobber a target that appears while writing") {
  Dir d;
  const fs::path target = d.path / "out.img";
  auto f = OutputFile::Create(target.string());
  REQUIRE(f.ok());
  WriteFd((*f)->fd(), "mine");
  Put(target, "theirs");
  CHECK((*f)->Commit().code() == Code::kAlreadyExists);
  CHECK(Slurp(target) == "theirs");
  f->reset();
  CHECK(d.Names() == std::vector<std::string>{"out.img"});
}

TEST_CASE("OutputFile takes a target name of the longest length") {
  Dir d;
  const fs::path target = d.path / std::string(255, 'n');
  auto f = OutputFile::Create(target.string());
  REQUIRE(f.ok());
  CHECK(fs::path((*f)->temp_path()).filename().string().size() <= 255);
  REQUIRE((*f)->Commit().ok());
  CHECK(fs::exists(target));
}

TEST_CASE("OutputFile refuses directories, even with overwrite") {
  Dir d;
  fs::create_directory(d.path / "sub");
  OutputFileOptions o;
  o.overwrite = true;
  CHECK(CodeOf(OutputFile::Create((d.path / "sub").string(), o)) == Code::kInvalidArgument);
  CHECK(CodeOf(OutputFile::Create((d.path / "nodir" / "x").string(), o)) == Code::kNotFound);
  CHECK(CodeOf(OutputFile::Create("", o)) == Code::kInvalidArgument);
}

TEST_CASE("sizes must be whole blocks, and the message names the nearest valid ones") {
  CHECK(RequireWholeBlocks(8192, 4096, "--size").ok());
  auto st = RequireWholeBlocks(4097, 4096, "--size");
  CHECK(st.code() == Code::kInvalidArgument);
  CHECK(st.message() == "--size 4097 is not a multiple of the 4096-byte block size: use 4096 or 8192");
  st = RequireWholeBlocks(100, 4096, "--size");
  CHECK(st.message() == "--size 100 is not a multiple of the 4096-byte block size: use 4096");
  CHECK(RequireWholeBlocks(0, 4096, "--size").code() == Code::kInvalidArgument);
  CHECK(RequireWholeBlocks(UINT64_MAX, 4096, "--size").code() == Code::kInvalidArgument);
}

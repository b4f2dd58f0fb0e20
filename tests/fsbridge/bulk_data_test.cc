// The bulk data path inside fsbridge (DataWriter handing whole runs down,
// data_reader reading by extents in large runs on a helper thread): files
// that span many runs, holes and fragmented free space come back byte for
// byte, through every device kind and through a write-behind device (which
// takes the run buffers instead of copying them).
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>

#include "block/mem_device.h"
#include "block/unique_fd.h"
#include "block/write_behind_device.h"
#include "fs_test_util.h"
#include "fsbridge/filesystem.h"

using namespace stack;
using namespace stack::testing;
using stack::fsbridge::Filesystem;

namespace {

// Where two byte strings first differ (-1: equal); Catch would print
// megabytes for a failed ==.
int64_t FirstDiff(const std::string& a, const std::string& b) {
  const size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i)
    if (a[i] != b[i]) return int64_t(i);
  return a.size() == b.size() ? -1 : int64_t(n);
}

uint64_t HostAllocated(const std::string& p) {
  struct stat st {};
  REQUIRE(::stat(p.c_str(), &st) == 0);
  return uint64_t(st.st_blocks) * 512;
}

// A sparse host file of `size` bytes: random data in the given (offset,
// length) pieces, a hole elsewhere, plus whole zero blocks written as
// data (they become holes in the image too). Returns its content.
std::string MakeSparse(const std::string& path, uint64_t size,
                       const std::vector<std::pair<uint64_t, uint64_t>>& pieces, uint64_t seed) {
  std::string content(size, '\0');
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  REQUIRE(fd.get() >= 0);
  for (const auto& [off, len] : pieces) {
    auto bytes = RandomBytes(len, seed++);
    // A run of zero blocks inside the data.
    if (len > 64 * 4096) std::fill_n(bytes.begin() + 16 * 4096, 8 * 4096, uint8_t{0});
    std::copy(bytes.begin(), bytes.end(), content.begin() + long(off));
    REQUIRE(::pwrite(fd.get(), bytes.data(), bytes.size(), off_t(off)) == ssize_t(bytes.size()));
  }
  REQUIRE(::ftruncate(fd.get(), off_t(size)) == 0);
  return content;
}

std::unique_ptr<BlockDevice> Device(const std::string& kind, const TempDir& t) {
  if (kind == "write-behind") {
    return std::make_unique<WriteBehindDevice>(std::make_unique<MemDevice>(4096, 96 * kMiB / 4096));
  }
  for (DevKind k : DevicesUnderTest())
    if (kind == DevName(k)) return MakeDevice(k, 96 * kMiB, t, "d");
  FAIL("no device kind " << kind);
  return nullptr;
}

std::vector<std::string> Kinds() {
  std::vector<std::string> v;
  for (DevKind k : DevicesUnderTest()) v.push_back(DevName(k));
  v.push_back("write-behind");
  return v;
}

}  // namespace

TEST_CASE("bulk data: a large sparse file put into fragmented free space reads back exactly",
          "[fsbridge][bulk]") {
  for (const std::string& kind : Kinds()) {
    SECTION(kind) {
      TempDir t;
      // 40 files of 256 KiB; every other one removed: free space in 256 KiB
      // pieces, so the big file's 4 MiB runs are each split across several
      // allocations (the case where a run must not be written whole).
      std::vector<uint8_t> small = RandomBytes(256 * 1024, 1);
      {
        std::ofstream(t.file("small"), std::ios::binary)
            .write(reinterpret_cast<const char*>(small.data()), std::streamsize(small.size()));
      }
      auto mk = Filesystem::Mkfs(Device(kind, t), {});
      REQUIRE_OK(mk);
      for (int i = 0; i < 40; ++i)
        REQUIRE_OK((*mk)->PutFile(t.file("small"), "/s" + std::to_string(i)));
      for (int i = 0; i < 40; i += 2) REQUIRE_OK((*mk)->Remove("/s" + std::to_string(i), false));
      // Reopened, the allocator starts from the front again: in the holes.
      REQUIRE_OK((*mk)->Close());
      auto reopened = Filesystem::Open((*mk)->Release(), true);
      REQUIRE_OK(reopened);
      Filesystem& fs = **reopened;
      const uint64_t size = 40 * kMiB;
      const std::string want = MakeSparse(
          t.file("big"), size, {{0, 9 * kMiB + 123}, {12 * kMiB, 5 * kMiB}, {30 * kMiB, 7 * kMiB + 4096}}, 7);
      REQUIRE_OK(fs.PutFile(t.file("big"), "/big"));
      auto st = fs.Stat("/big");
      REQUIRE_OK(st);
      CHECK(st->size == size);
      CHECK(st->allocated_bytes < 22 * kMiB);  // holes stayed holes
      CHECK(FirstDiff(ReadAll(fs, "/big"), want) == -1);
      // Into a host file: same bytes, holes kept.
      {
        UniqueFd out(::open(t.file("got").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
        REQUIRE(out.get() >= 0);
        REQUIRE_OK(fs.ReadFileTo("/big", out.get(), t.file("got")));
      }
      CHECK(FirstDiff(Slurp(t.file("got")), want) == -1);
      CHECK(HostAllocated(t.file("got")) < 24 * kMiB);
      REQUIRE_OK(fs.ExtractToDirectory("/big", t.file("x")));
      CHECK(FirstDiff(Slurp(t.file("x") + "/big"), want) == -1);
      for (int i = 1; i < 40; i += 2) {
        const std::string s = ReadAll(fs, "/s" + std::to_string(i));
        CHECK(FirstDiff(s, std::string(small.begin(), small.end())) == -1);
      }
      REQUIRE_OK(fs.Close());
      auto dev = fs.Release();
      std::string out;
      const int rc = E2fsck(DumpImage(*dev, t, "img"), &out);
      INFO(out);
      CHECK(rc == 0);
      // Read again after reopening (nothing from the write side's caches).
      auto again = Filesystem::Open(std::move(dev), false);
      REQUIRE_OK(again);
      CHECK(FirstDiff(ReadAll(**again, "/big"), want) == -1);
    }
  }
}

TEST_CASE("bulk data: a sink error stops the read and comes back", "[fsbridge][bulk]") {
  TempDir t;
  MakeSparse(t.file("big"), 20 * kMiB, {{0, 20 * kMiB}}, 3);
  auto mk = Filesystem::Mkfs(std::make_unique<MemDevice>(4096, 64 * kMiB / 4096), {});
  REQUIRE_OK(mk);
  REQUIRE_OK((*mk)->PutFile(t.file("big"), "/big"));
  uint64_t seen = 0;
  Status s = (*mk)->ReadFile("/big", [&](std::span<const uint8_t> d) -> Status {
    seen += d.size();
    if (seen > 5 * kMiB) return Status::IoError("sink full");
    return Status::Ok();
  });
  CHECK(CodeOf(s) == Code::kIoError);
  CHECK(seen < 20 * kMiB);
  // The file system is still usable after the abandoned read-ahead.
  std::ostringstream o;
  REQUIRE_OK((*mk)->ReadFile("/big", o));
  CHECK(FirstDiff(o.str(), Slurp(t.file("big"))) == -1);
}

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <fstream>

#include "block/file_device.h"
#include "test_util.h"

using namespace stack;
using namespace stack::testing;

TEST_CASE("FileDevice open and create errors") {
  TempDir dir;
  CHECK(CodeOf(FileDevice::Open(dir.file("absent"))) == Code::kNotFound);
  {
    std::ofstream f(dir.file("odd"));
    f << "12345";
  }
  auto odd = FileDevice::Open(dir.file("odd"));
  CHECK(CodeOf(odd) == Code::kInvalidArgument);
  CHECK(odd.status().message().find("multiple of block size") != std::string::npos);
  REQUIRE_OK(FileDevice::Create(dir.file("a"), 8192));
  CHECK(CodeOf(FileDevice::Create(dir.file("a"), 8192)) == Code::kAlreadyExists);
  CHECK(CodeOf(FileDevice::Create(dir.file("b"), 100)) == Code::kInvalidArgument);
  FileDeviceOptions bad;
  bad.block_size = 1000;
  CHECK(CodeOf(FileDevice::Open(dir.file("a"), bad)) == Code::kInvalidArgument);
}

TEST_CASE("FileDevice zero_pad_tail takes a partial last block, read-only, as zeros") {
  TempDir dir;
  {
    std::ofstream f(dir.file("odd"));
    f << "12345";
  }
  FileDeviceOptions o;
  o.block_size = 512;
  o.zero_pad_tail = true;
  // Writable: the padding could not be written back as it reads.
  CHECK(CodeOf(FileDevice::Open(dir.file("odd"), o)) == Code::kInvalidArgument);
  o.read_only = true;
  auto d = FileDevice::Open(dir.file("odd"), o);
  REQUIRE_OK(d);
  CHECK((*d)->size_bytes() == 512);
  std::vector<uint8_t> b(512, 0xff);
  REQUIRE_OK((*d)->Read(0, b));
  CHECK(std::string(b.begin(), b.begin() + 5) == "12345");
  CHECK(std::all_of(b.begin() + 5, b.end(), [](uint8_t c) { return c == 0; }));
}

TEST_CASE("FileDevice exclusive lock makes a second opener Busy") {
  TempDir dir;
  FileDeviceOptions o;
  o.lock = true;
  auto first = FileDevice::Create(dir.file("p"), 8192, o);
  REQUIRE_OK(first);
  auto second = FileDevice::Open(dir.file("p"), o);
  CHECK(CodeOf(second) == Code::kBusy);
  // A second *process* is refused as well.
  CHECK(RunCommand("flock -n " + dir.file("p") + " true") != 0);
  first->reset();
  REQUIRE_OK(FileDevice::Open(dir.file("p"), o));
}

TEST_CASE("FileDevice keeps the file sparse and reports holes") {
  TempDir dir;
  auto d = FileDevice::Create(dir.file("s"), 1024 * 4096);
  REQUIRE_OK(d);
  auto& dev = **d;
  REQUIRE_OK(dev.Write(100 * 4096, RandomBytes(3 * 4096, 1)));
  REQUIRE_OK(dev.Write(900 * 4096, RandomBytes(4096, 2)));
  REQUIRE_OK(dev.Flush());
  auto ext = dev.AllocatedExtents(0, dev.size_bytes());
  REQUIRE_OK(ext);
  // The filesystem may round data extents outward, but they must cover the
  // two written ranges and leave most of the file as holes.
  uint64_t total = 0;
  for (auto& e : *ext) total += e.length;
  CHECK(total < 200 * 4096);
  struct stat st {};
  REQUIRE(::stat(dir.file("s").c_str(), &st) == 0);
  CHECK(static_cast<uint64_t>(st.st_blocks) * 512 < 200 * 4096);
  // Discard punches a hole: allocated size shrinks, reads are zeros.
  REQUIRE_OK(dev.Discard(100 * 4096, 3 * 4096));
  std::vector<uint8_t> buf(3 * 4096);
  REQUIRE_OK(dev.Read(100 * 4096, buf));
  CHECK(std::all_of(buf.begin(), buf.end(), [](uint8_t b) { return b == 0; }));
}

TEST_CASE("FileDevice resize grows sparsely and shrinks") {
  TempDir dir;
  auto d = FileDevice::Create(dir.file("r"), 4 * 4096);
  REQUIRE_OK(d);
  REQUIRE_OK((*d)->Resize(1024 * 4096));
  CHECK((*d)->block_count() == 1024);
  std::vector<uint8_t> buf(4096);
  REQUIRE_OK((*d)->Read(1023 * 4096, buf));
  REQUIRE_OK((*d)->Resize(2 * 4096));
  CHECK(CodeOf((*d)->Read(3 * 4096, buf)) == Code::kOutOfRange);
}

TEST_CASE("FileDevice flushes large writes behind, and only those") {
  TempDir dir;
  FileDeviceOptions o;
  // With or without the write-behind hint (a server turns the hint off and
  // still wants its commits to find little left to flush).
  o.write_behind_bytes = GENERATE(0, 64 << 10);
  o.flush_behind_bytes = 256 << 10;
  auto d = FileDevice::Create(dir.file("f"), 4 << 20, o);
  REQUIRE_OK(d);
  auto& dev = **d;
  // Small writes (under write_behind_bytes) are the kernel's business: no
  // background flush, however many.
  for (uint64_t i = 0; i < 64; ++i) REQUIRE_OK(dev.Write(i * 4096, RandomBytes(4096, i)));
  REQUIRE_OK(dev.Flush());
  CHECK(dev.flushes_behind() == 0);
  // Four 128 KiB writes cross the 256 KiB mark twice: a flush runs behind
  // them (waited for here without a time limit that could fail a slow run).
  for (uint64_t i = 0; i < 4; ++i)
    REQUIRE_OK(dev.Write((1 << 20) + i * (128 << 10), RandomBytes(128 << 10, 100 + i)));
  while (dev.flushes_behind() == 0) ::usleep(1000);
  REQUIRE_OK(dev.Flush());
  std::vector<uint8_t> got(128 << 10);
  for (uint64_t i = 0; i < 4; ++i) {
    REQUIRE_OK(dev.Read((1 << 20) + i * (128 << 10), got));
    REQUIRE(got == RandomBytes(128 << 10, 100 + i));
  }
  // Off by default: the same writes start nothing.
  auto plain = FileDevice::Create(dir.file("g"), 4 << 20);
  REQUIRE_OK(plain);
  for (uint64_t i = 0; i < 8; ++i)
    REQUIRE_OK((*plain)->Write(i * (128 << 10), RandomBytes(128 << 10, i)));
  REQUIRE_OK((*plain)->Flush());
  CHECK((*plain)->flushes_behind() == 0);
}

// Filesystem::Grow: growing ext4 in place, checked by e2fsck -fn, dumpe2fs
// (block counts, free counts, reserved GDT blocks) and files written into
// the new space, read back by us and by debugfs.
#include <catch2/catch.hpp>
#include <fstream>
#include <regex>

#include "block/file_device.h"
#include "fs_test_util.h"
#include "fsbridge/filesystem.h"

using namespace stack;
using namespace stack::testing;
using stack::fsbridge::Filesystem;
using stack::fsbridge::MkfsOptions;

namespace {

// A dumpe2fs -h field as a number ("Block count:  76800" -> 76800).
uint64_t SuperField(const std::string& dump, const std::string& field) {
  std::smatch m;
  const std::regex re(field + ":\\s+(\\d+)");
  if (!std::regex_search(dump, m, re)) FAIL("no '" << field << "' in dumpe2fs output");
  return std::stoull(m[1]);
}

// Closes, dumps and checks the image: e2fsck -fn clean, and dumpe2fs's
// free counts equal what Df reported before closing. Returns dumpe2fs -h.
std::string CheckImage(Filesystem& fs, BlockDevice& dev, const TempDir& t, const std::string& name,
                       std::string* img_out = nullptr) {
  auto df = fs.Df();
  REQUIRE_OK(df.status());
  REQUIRE_OK(fs.Close());
  const std::string img = DumpImage(dev, t, name);
  std::string out;
  const int rc = E2fsck(img, &out);
  INFO(out);
  REQUIRE(rc == 0);
  out.clear();
  REQUIRE(RunCommand("dumpe2fs -h " + img + " 2>/dev/null", &out) == 0);
  CHECK(SuperField(out, "Block count") == df->blocks_total);
  CHECK(SuperField(out, "Free blocks") == df->blocks_free);
  CHECK(SuperField(out, "Inode count") == df->inodes_total);
  CHECK(SuperField(out, "Free inodes") == df->inodes_free);
  if (img_out) *img_out = img;
  return out;
}

// Puts a file of `bytes` at fs_path and returns its content.
std::vector<uint8_t> PutRandom(Filesystem& fs, const TempDir& t, const std::string& fs_path,
                               size_t bytes, uint64_t seed) {
  std::vector<uint8_t> d = RandomBytes(bytes, seed);
  const std::string host = t.file("put" + std::to_string(seed));
  WriteHostFile(host, d);
  REQUIRE_OK(fs.PutFile(host, fs_path));
  return d;
}

std::vector<uint8_t> ReadBack(Filesystem& fs, const std::string& p) {
  std::vector<uint8_t> got;
  REQUIRE_OK(fs.ReadFile(p, [&](std::span<const uint8_t> s) {
    got.insert(got.end(), s.begin(), s.end());
    return Status::Ok();
  }));
  return got;
}

}  // namespace

TEST_CASE("grow: new groups, the last partial group completed, files fill the new space",
          "[fsbridge][grow]") {
  for (DevKind k : DevicesUnderTest()) {
    DYNAMIC_SECTION(DevName(k)) {
      TempDir t;
      // 100 MiB: one partial group of 4 KiB blocks. 300 MiB: two whole
      // groups (group 1 holds backup superblock and descriptors) and a
      // partial third.
      auto dev = MakeDevice(k, 300 * kMiB, t, "grow");
      BlockDevice* raw = dev.get();
      MkfsOptions o;
      o.size_bytes = 100 * kMiB;
      auto fs = Filesystem::Mkfs(std::move(dev), o);
      REQUIRE_OK(fs.status());
      const auto small = PutRandom(**fs, t, "/before.bin", 3 * kMiB, 1);
      auto df0 = (*fs)->Df();
      REQUIRE_OK(df0.status());
      REQUIRE(df0->blocks_total == 25600);

      auto grown = (*fs)->Grow(0);
      REQUIRE_OK(grown.status());
      CHECK(*grown == 300 * kMiB);
      auto df1 = (*fs)->Df();
      REQUIRE_OK(df1.status());
      CHECK(df1->blocks_total == 76800);
      CHECK(df1->inodes_total == 3 * df0->inodes_total);
      CHECK(df1->blocks_free > df0->blocks_free + 45000);
      // More than the old file system's free space: it must reach the new groups.
      REQUIRE(df0->blocks_free * 4096 < 150 * kMiB);
      const auto big = PutRandom(**fs, t, "/big.bin", 150 * kMiB, 2);
      std::string img;
      const std::string dump = CheckImage(**fs, *raw, t, "grow", &img);
      CHECK(SuperField(dump, "Reserved block count") == 3840);  // 5 % kept

      // Read back by us (reopened) and by debugfs.
      auto again = Filesystem::Open((*fs)->Release(), false);
      REQUIRE_OK(again.status());
      CHECK(ReadBack(**again, "/before.bin") == small);
      CHECK(ReadBack(**again, "/big.bin") == big);
      std::string out;
      REQUIRE(RunCommand("debugfs -R 'stat /big.bin' " + img + " 2>/dev/null", &out) == 0);
      CHECK(out.find("Size: " + std::to_string(150 * kMiB)) != std::string::npos);
      out.clear();
      REQUIRE(RunCommand("debugfs -R 'dump /big.bin " + t.file("dbg") + "' " + img + " 2>/dev/null",
                         &out) == 0);
      CHECK(RunCommand("cmp " + t.file("dbg") + " " + t.file("put2")) == 0);
    }
  }
}

TEST_CASE("grow: reserved GDT blocks become descriptor blocks (1 KiB blocks)", "[fsbridge][grow]") {
  // 1 KiB blocks: 8 MiB groups, 16 descriptors per block, so one descriptor
  // block covers 128 MiB and 300 MiB needs three.
  for (DevKind k : {DevKind::kMem, DevKind::kFile, DevKind::kGarbage}) {
    DYNAMIC_SECTION(DevName(k)) {
      TempDir t;
      auto dev = MakeDevice(k, 300 * kMiB, t, "gdt", 1024);
      BlockDevice* raw = dev.get();
      MkfsOptions o;
      o.block_size = 1024;
      o.size_bytes = 8 * kMiB + 512 * 1024;  // a partial second group, left out by mkfs or kept
      auto fs = Filesystem::Mkfs(std::move(dev), o);
      REQUIRE_OK(fs.status());
      PutRandom(**fs, t, "/a.bin", 1 * kMiB, 3);
      std::string dump = CheckImage(**fs, *raw, t, "gdt0");
      const uint64_t reserved_gdt = SuperField(dump, "Reserved GDT blocks");
      REQUIRE(reserved_gdt >= 3);

      // Within the first descriptor block: 64 MiB = 8 groups.
      fs = Filesystem::Open((*fs)->Release(), true);
      REQUIRE_OK(fs.status());
      auto g1 = (*fs)->Grow(64 * kMiB);
      REQUIRE_OK(g1.status());
      CHECK(*g1 == 64 * kMiB);
      PutRandom(**fs, t, "/b.bin", 40 * kMiB, 4);
      dump = CheckImage(**fs, *raw, t, "gdt1");
      CHECK(SuperField(dump, "Reserved GDT blocks") == reserved_gdt);

      // Past it: 300 MiB = 37.5 groups, three descriptor blocks.
      fs = Filesystem::Open((*fs)->Release(), true);
      REQUIRE_OK(fs.status());
      auto g2 = (*fs)->Grow(0);
      REQUIRE_OK(g2.status());
      CHECK(*g2 == 300 * kMiB);
      const auto c = PutRandom(**fs, t, "/c.bin", 80 * kMiB, 5);
      std::string img;
      dump = CheckImage(**fs, *raw, t, "gdt2", &img);
      CHECK(SuperField(dump, "Reserved GDT blocks") == reserved_gdt - 2);
      CHECK(SuperField(dump, "Block count") == 300 * 1024);
      std::string out;
      REQUIRE(RunCommand("dumpe2fs " + img + " 2>/dev/null | grep -c '^Group [0-9]'", &out) == 0);
      CHECK(std::stoul(out) == 38);
      auto again = Filesystem::Open((*fs)->Release(), false);
      REQUIRE_OK(again.status());
      CHECK(ReadBack(**again, "/c.bin") == c);
    }
  }
}

TEST_CASE("grow past what the layout takes is refused before any change", "[fsbridge][grow]") {
  TempDir t;
  // 8 MiB of 1 KiB blocks reserves descriptor room for 1024 groups (8 GiB).
  auto dev = MakeDevice(DevKind::kFile, 9 * 1024 * kMiB, t, "limit", 1024);
  MkfsOptions o;
  o.block_size = 1024;
  o.size_bytes = 8 * kMiB;
  auto fs = Filesystem::Mkfs(std::move(dev), o);
  REQUIRE_OK(fs.status());
  auto df0 = (*fs)->Df();
  REQUIRE_OK(df0.status());

  auto r = (*fs)->Grow(0);
  REQUIRE(r.status().Is(Code::kUnsupported));
  INFO(r.status().ToString());
  CHECK(r.status().message().find("at most 8589935616 bytes") != std::string::npos);
  CHECK(r.status().message().find("group descriptor blocks") != std::string::npos);
  auto shrink = (*fs)->Grow(4 * kMiB);
  CHECK(shrink.status().Is(Code::kUnsupported));
  auto past = (*fs)->Grow(10ull * 1024 * kMiB);
  CHECK(past.status().Is(Code::kOutOfRange));
  auto same = (*fs)->Grow(8 * kMiB);
  REQUIRE_OK(same.status());
  CHECK(*same == 8 * kMiB);
  auto df1 = (*fs)->Df();
  REQUIRE_OK(df1.status());
  CHECK(df1->blocks_total == df0->blocks_total);
  CHECK(df1->blocks_free == df0->blocks_free);
  REQUIRE_OK((*fs)->Close());
  std::string out;
  const int rc = E2fsck(t.file("limit.img"), &out);
  INFO(out);
  CHECK(rc == 0);

  // Up to the limit (1024 groups after block 0) it grows.
  fs = Filesystem::Open((*fs)->Release(), true);
  REQUIRE_OK(fs.status());
  auto most = (*fs)->Grow(8 * 1024 * kMiB + 1024);
  REQUIRE_OK(most.status());
  CHECK(*most == 8 * 1024 * kMiB + 1024);
  REQUIRE_OK((*fs)->Close());
  out.clear();
  CHECK(E2fsck(t.file("limit.img"), &out) == 0);
}

TEST_CASE("grow: 4 KiB blocks past 8 GiB take a second descriptor block", "[fsbridge][grow]") {
  TempDir t;
  auto dev = MakeDevice(DevKind::kFile, 9 * 1024 * kMiB, t, "big");
  MkfsOptions o;
  o.size_bytes = 1024 * kMiB;
  auto fs = Filesystem::Mkfs(std::move(dev), o);
  REQUIRE_OK(fs.status());
  REQUIRE_OK((*fs)->Grow(0).status());
  const auto d = PutRandom(**fs, t, "/tail.bin", 64 * kMiB, 6);
  auto df = (*fs)->Df();
  REQUIRE_OK(df.status());
  CHECK(df->blocks_total == 9ull * 1024 * 256);
  REQUIRE_OK((*fs)->Close());
  std::string out;
  int rc = E2fsck(t.file("big.img"), &out);
  INFO(out);
  CHECK(rc == 0);
  out.clear();
  REQUIRE(RunCommand("dumpe2fs -h " + t.file("big.img") + " 2>/dev/null", &out) == 0);
  CHECK(SuperField(out, "Block count") == 9ull * 1024 * 256);
  out.clear();
  REQUIRE(RunCommand("dumpe2fs " + t.file("big.img") + " 2>/dev/null | grep -c '^Group [0-9]'", &out) ==
          0);
  CHECK(std::stoul(out) == 72);
}

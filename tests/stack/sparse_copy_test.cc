#include <catch2/catch.hpp>

#include "block/file_device.h"
#include "block/mem_device.h"
#include "block/zero.h"
#include "stack/sparse_copy.h"
#include "test_util.h"

using namespace stack;
using namespace stack::compose;
using namespace stack::testing;

TEST_CASE("sparse copy keeps holes and zero blocks as holes") {
  MemDevice src(4096, 4096);  // 16 MiB
  auto a = RandomBytes(3 * 4096, 1);
  REQUIRE_OK(src.Write(10 * 4096, a));
  REQUIRE_OK(src.Write(2000 * 4096, std::vector<uint8_t>(4 * 4096, 0)));  // explicit zeros
  auto b = RandomBytes(4096, 2);
  REQUIRE_OK(src.Write(4095 * 4096, b));
  TempDir dir;
  auto dst = FileDevice::Create(dir.file("out.img"), src.size_bytes());
  REQUIRE_OK(dst);
  auto rep = CopySparse(src, **dst);
  REQUIRE_OK(rep);
  CHECK(rep->method == "sparse-extent-copy");
  CHECK(rep->written_bytes == 4 * 4096);
  CHECK(rep->zero_bytes == 4 * 4096);
  CHECK(rep->allocated_bytes == 8 * 4096);
  std::vector<uint8_t> got(3 * 4096);
  REQUIRE_OK((*dst)->Read(10 * 4096, got));
  CHECK(got == a);
  std::vector<uint8_t> last(4096);
  REQUIRE_OK((*dst)->Read(4095 * 4096, last));
  CHECK(last == b);
  auto ext = (*dst)->AllocatedExtents(0, (*dst)->size_bytes());
  REQUIRE_OK(ext);
  uint64_t alloc = 0;
  for (auto& e : *ext) alloc += e.length;
  CHECK(alloc <= 64 * 4096);  // only the data, not 16 MiB
}

TEST_CASE("sparse copy writes zeros where the destination does not read zeros") {
  MemDevice src(4096, 16);
  REQUIRE_OK(src.Write(0, std::vector<uint8_t>(2 * 4096, 0)));
  MemDevice dst(4096, 16);
  REQUIRE_OK(dst.Write(0, RandomBytes(2 * 4096, 9)));  // stale content
  CopyOptions o;
  o.dst_reads_zero = false;
  auto rep = CopySparse(src, dst, o);
  REQUIRE_OK(rep);
  std::vector<uint8_t> got(2 * 4096);
  REQUIRE_OK(dst.Read(0, got));
  CHECK(IsAllZero(got));
}

TEST_CASE("sparse copy refuses a smaller destination and mixed block sizes work") {
  MemDevice src(4096, 16);
  MemDevice small(4096, 8);
  CHECK(CodeOf(CopySparse(src, small)) == Code::kInvalidArgument);
  MemDevice src512(512, 64);
  auto d = RandomBytes(512, 3);
  REQUIRE_OK(src512.Write(512 * 9, d));
  MemDevice dst4k(4096, 8);
  REQUIRE_OK(CopySparse(src512, dst4k));
  std::vector<uint8_t> blk(4096);
  REQUIRE_OK(dst4k.Read(4096, blk));
  CHECK(std::equal(d.begin(), d.end(), blk.begin() + 512));
}
